# Mask R-CNN service image: one image for GPU and CPU hosts (MASKRCNN_DEVICE=auto picks the GPU when the
# container sees one, else the CPU). The demo model is baked in as the default; real weights are mounted
# read-only at /models and named by MASKRCNN_WEIGHTS.
#
#   DOCKER_BUILDKIT=1 docker build -t maskrcnn .
#
# Build arguments:
#   BASE_IMAGE     Debian bookworm (python3 is 3.11, which the torch wheels need); your registry's mirror of it.
#   TORCH_WHEELS   "index" (default): torch/torchvision from PIP_INDEX_URL (PyPI's Linux wheels are the CUDA
#                  build that also runs on a CPU); "local": only from the wheels in docker/wheels/ of the build
#                  context, no network for them (docker/smoke-test.sh fills that folder from local disk).
#   PIP_INDEX_URL  the package index (a company mirror); PIP_EXTRA_INDEX_URL e.g. a download.pytorch.org
#                  index for another CUDA build.
# Behind a TLS-inspecting proxy, hand pip the proxy's CA as a BuildKit secret; it is read during the build
# only and never stored in a layer:
#   DOCKER_BUILDKIT=1 docker build --secret id=extra_ca,src=/path/to/proxy-ca.pem -t maskrcnn .
#
# No "# syntax=" line on purpose: that would pull a frontend image from Docker Hub, which offline and
# mirrored builders cannot; the frontend built into Docker >= 20.10 knows RUN --mount.
#
# Layers: the third-party venv (torch and its CUDA libraries, ~5.8 GB) and the project (/opt/app, ~10 MB) are
# copied into the runtime image separately, so a code change rebuilds, pushes and pulls megabytes, not the venv.

ARG BASE_IMAGE=debian:bookworm-slim

# --- third-party dependencies: change only with pyproject.toml's dependency list ---
FROM ${BASE_IMAGE} AS torch
# python3-venv only in the build stages: the runtime stage gets a ready venv and no pip, compilers or headers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=120
COPY docker/with-extra-ca.sh /usr/local/bin/with-extra-ca

ARG TORCH_WHEELS=index
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_EXTRA_INDEX_URL=
RUN --mount=type=secret,id=extra_ca \
    --mount=type=bind,source=docker/wheels,target=/wheels \
    case "$TORCH_WHEELS" in \
        local) from="--no-index --find-links /wheels" ;; \
        index) from="" ;; \
        *) echo "TORCH_WHEELS must be index or local, not $TORCH_WHEELS" >&2; exit 2 ;; \
    esac \
    && with-extra-ca pip install $from "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"

# The dependency list alone, out of pyproject.toml (tomllib: Python 3.11). The next stage copies this file, and
# BuildKit caches a COPY by content: editing pyproject.toml elsewhere (version, tools) keeps the venv layer.
FROM torch AS requirements
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; \
print(*tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
    > /requirements.txt

FROM torch AS deps
COPY --from=requirements /requirements.txt /tmp/requirements.txt
RUN --mount=type=secret,id=extra_ca \
    with-extra-ca pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt \
    && echo /opt/app > "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/maskrcnn-app.pth" \
    && pip uninstall -y pip

# --- the project: a regular install (not -e) into /opt/app, found by the venv through maskrcnn-app.pth ---
FROM deps AS app
WORKDIR /src
COPY pyproject.toml README.md maskrcnn_cli.py ./
COPY models ./models
COPY service ./service
COPY trainer ./trainer
# pip comes back only in this stage (its venv is not copied); the console script's interpreter is /opt/venv's.
RUN --mount=type=secret,id=extra_ca \
    python -m ensurepip --upgrade >/dev/null \
    && with-extra-ca python -m pip install --no-deps --target /opt/app . \
    && cd / \
    && python -c "import service.app, service.config as c; assert c.DEMO_WEIGHTS.is_file(), c.DEMO_WEIGHTS; \
assert str(c.DEMO_WEIGHTS).startswith('/opt/app/'), c.DEMO_WEIGHTS" \
    && head -1 /opt/app/bin/maskrcnn | grep -qx '#!/opt/venv/bin/python.*'

# --- runtime ---
FROM ${BASE_IMAGE} AS runtime
# python3 only: no compilers, no pip, no curl (the health check is a python one-liner).
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1000 --user-group --create-home --home-dir /home/app --shell /usr/sbin/nologin app \
    && install -d -o 1000 -g 1000 /models
COPY --from=deps /opt/venv /opt/venv
COPY --from=app /opt/app /opt/app
# NVIDIA_*: what the NVIDIA container toolkit exposes when the container gets a GPU; ignored on CPU hosts.
ENV PATH=/opt/app/bin:/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MASKRCNN_DEVICE=auto \
    TORCH_HOME=/models/torch \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 1000:1000
WORKDIR /home/app
# Mount real weights at /models read-only and set MASKRCNN_WEIGHTS=/models/<file>; unset, the demo model
# serves. A checkpoint pulled by `maskrcnn weights pull NAME` serves by NAME when the host's torch cache is
# mounted at /models/torch (TORCH_HOME). No VOLUME instruction: it would leave an anonymous volume behind
# every run that mounts nothing.
EXPOSE 8000
# Ready, not only alive: /readyz turns 200 after the warm-up forward. start-period covers loading the
# weights and the warm-up on a slow CPU.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
CMD ["maskrcnn", "serve", "--host", "0.0.0.0", "--port", "8000"]
