#!/usr/bin/env bash
# Docker smoke test: build the image, run the CPU variant (service maskrcnn-cpu) with docker-compose, wait until
# it is healthy, POST a photo to /detect, decode every RLE mask with pycocotools, serve weights from the
# read-only /models mount, stop gracefully, tear everything down.
#
#   sudo docker/smoke-test.sh        (root: it may start dockerd; takes minutes, most of it the image build)
#
# What it needs: docker.io, docker-compose (v1 or v2), debootstrap (only when debian:bookworm-slim is not in the
# engine), curl, and the project's .venv (pycocotools, and pip to resolve the torch wheels).
# Environment:
#   SMOKE_DATA_ROOT  a dockerd --data-root to keep between runs (layer cache: a second build takes seconds);
#                    default a temporary one, removed at the end. Only used when this script starts dockerd.
#   TORCH_WHEELS     local (default: hard-link this machine's torch wheels into docker/wheels/) or index.
#   EXTRA_CA         a CA bundle for pip in the build (default: /etc/ssl/certs/ca-certificates.crt when present,
#                    since this machine reaches PyPI through a TLS-inspecting proxy); empty: none.
#
# It leaves the machine as it found it: when no engine was running it starts dockerd in a temporary exec/data
# root and afterwards stops it, removes the docker0 bridge, the DOCKER* iptables chains and rules (only if they
# were not there before it started), restores the FORWARD chain's policy and net.ipv4.ip_forward. When an
# engine was already running it uses that engine and removes only what it created there: its containers,
# network, image and base image (the build cache stays in that engine: `docker builder prune` would also drop
# other people's).
# The apt packages it needs are not installed or removed by it.
set -euo pipefail

# BuildKit (RUN --mount, --secret) works only through Debian's CLI; /usr/local/bin/docker may lack it.
export PATH="/usr/bin:/usr/sbin:$PATH"
export DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
PY="$REPO/.venv/bin/python"
TORCH_WHEELS=${TORCH_WHEELS:-local}
EXTRA_CA=${EXTRA_CA-/etc/ssl/certs/ca-certificates.crt}
IMAGE="maskrcnn:smoke-$$"
PROJECT="maskrcnn-smoke-$$"
WORK=$(mktemp -d /tmp/maskrcnn-smoke.XXXXXX)
WHEELS="$REPO/docker/wheels"
T0=$(date +%s)

started_engine=0
created_base=0
iptables_had_docker=1
ip_forward_before=$(cat /proc/sys/net/ipv4/ip_forward)
forward_policy_before=$(iptables -S FORWARD 2>/dev/null | awk '$1 == "-P" {print $3}')

log() { printf '[smoke %4ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }

compose() {
    # The cpu profile on for every command, so that down and logs also see the CPU service.
    COMPOSE_PROFILES=cpu MASKRCNN_IMAGE="$IMAGE" MASKRCNN_PORT="$PORT" "${COMPOSE[@]}" -p "$PROJECT" "$@"
}

cleanup() {
    local rc=$?
    set +e
    log "cleaning up (exit status $rc)"
    if [[ -n "${PORT:-}" ]] && docker info >/dev/null 2>&1; then
        [[ $rc -ne 0 ]] && compose logs --tail=50 >&2
        compose down --volumes --remove-orphans --timeout 60 >/dev/null 2>&1
    fi
    if docker info >/dev/null 2>&1; then
        docker image rm -f "$IMAGE" >/dev/null 2>&1
        [[ $created_base -eq 1 ]] && docker image rm -f debian:bookworm-slim >/dev/null 2>&1
    fi
    if [[ $started_engine -eq 1 ]]; then
        kill "$(cat "$WORK/dockerd.pid")" 2>/dev/null
        for _ in $(seq 1 150); do [[ -e "$WORK/dockerd.pid" ]] || break; sleep 0.2; done
        # dockerd leaves these behind on purpose (they are shared with other engines); nothing else uses them here.
        ip link show docker0 >/dev/null 2>&1 && ip link delete docker0
        if [[ $iptables_had_docker -eq 0 ]]; then
            remove_docker_iptables
            # dockerd turns the FORWARD policy to DROP when it enables ip_forward.
            [[ -n $forward_policy_before ]] && iptables -P FORWARD "$forward_policy_before"
        fi
        echo "$ip_forward_before" >/proc/sys/net/ipv4/ip_forward
        # Mounts dockerd could not undo (killed mid-build) would make rm fail; unmount them, deepest first.
        grep -o " $WORK/[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l
    fi
    # Hard links: removing them frees nothing on disk and leaves the originals alone.
    find "$WHEELS" -mindepth 1 ! -name README.md -delete
    rm -rf "$WORK"
    log "done in $(($(date +%s) - T0)) s"
    exit "$rc"
}

remove_docker_iptables() {
    local table rule chain
    for table in filter nat; do
        # Rules in the built-in chains that jump to DOCKER* chains, then the DOCKER* chains themselves.
        iptables -t "$table" -S | grep -E '^-A (INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) .*(DOCKER|docker0)' |
            while read -r rule; do
                # shellcheck disable=SC2086 # the rule is a list of words as iptables -S prints them
                iptables -t "$table" ${rule/-A/-D}
            done
        for chain in $(iptables -t "$table" -S | awk '/^-N DOCKER/ {print $2}'); do
            iptables -t "$table" -F "$chain"
        done
        for chain in $(iptables -t "$table" -S | awk '/^-N DOCKER/ {print $2}'); do
            iptables -t "$table" -X "$chain"
        done
    done
}

trap cleanup EXIT
trap 'exit 130' INT TERM

if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
else
    COMPOSE=(docker-compose)
fi

# 1. An engine: the one that runs, else our own in temporary directories.
if docker info >/dev/null 2>&1; then
    log "using the running Docker engine"
else
    [[ $(id -u) -eq 0 ]] || { echo "no Docker engine runs and starting one needs root" >&2; exit 1; }
    iptables -t filter -S DOCKER >/dev/null 2>&1 || iptables_had_docker=0
    DATA_ROOT=${SMOKE_DATA_ROOT:-$WORK/data}
    mkdir -p "$DATA_ROOT" "$WORK/exec"
    dockerd --data-root "$DATA_ROOT" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" \
        -H "unix://$WORK/docker.sock" >"$WORK/dockerd.log" 2>&1 &
    started_engine=1
    export DOCKER_HOST="unix://$WORK/docker.sock"
    for _ in $(seq 1 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
    docker info >/dev/null 2>&1 || { cat "$WORK/dockerd.log" >&2; exit 1; }
    log "dockerd started (data root $DATA_ROOT)"
fi

# 2. A base image: debootstrap's minimal bookworm, tagged as the Dockerfile's default, when the engine lacks one.
if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
    t=$(date +%s)
    MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    debootstrap --variant=minbase bookworm "$WORK/rootfs" "${MIRROR:-http://deb.debian.org/debian}" \
        >"$WORK/debootstrap.log" 2>&1 ||
        { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
    tar -C "$WORK/rootfs" -c . | docker import - debian:bookworm-slim >/dev/null
    rm -rf "$WORK/rootfs"
    created_base=$((started_engine == 0))  # our own engine goes away with everything in it
    log "base image debian:bookworm-slim from debootstrap in $(($(date +%s) - t)) s"
fi

# 3. The image.
build_args=(--build-arg "TORCH_WHEELS=$TORCH_WHEELS")
if [[ $TORCH_WHEELS == local ]]; then
    t=$(date +%s)
    "$PY" docker/wheelhouse.py "$WHEELS" torch==2.14.1 torchvision==0.29.1
    log "wheels linked into docker/wheels in $(($(date +%s) - t)) s"
fi
[[ -n $EXTRA_CA && -s $EXTRA_CA ]] && build_args+=(--secret "id=extra_ca,src=$EXTRA_CA")
t=$(date +%s)
docker build --progress=plain "${build_args[@]}" -t "$IMAGE" . >"$WORK/build.log" 2>&1 ||
    { tail -40 "$WORK/build.log" >&2; exit 1; }
BUILD_S=$(($(date +%s) - t))
SIZE=$(docker image inspect --format '{{.Size}}' "$IMAGE")
log "image $IMAGE built in $BUILD_S s, $((SIZE / 1000000)) MB"

docker history --format '{{.Size}}\t{{printf "%.90s" .CreatedBy}}' "$IMAGE" | head -8 >&2

# The runtime stage must hold no compilers and run as uid 1000.
docker run --rm --entrypoint sh "$IMAGE" -c \
    'for c in cc gcc g++ c++ clang make pip; do command -v $c && exit 1; done; test "$(id -u)" = 1000' >&2 ||
    { echo "runtime image has a compiler or pip, or does not run as uid 1000" >&2; exit 1; }
# The image's default MASKRCNN_DEVICE=auto falls back to the CPU where the container sees no GPU.
device=$(docker run --rm "$IMAGE" python3 -c 'from service.config import Settings; print(Settings().resolved_device())')
[[ $device == cpu ]] || { echo "MASKRCNN_DEVICE=auto chose $device on a host without a GPU" >&2; exit 1; }

# 4. The CPU variant up, on a free port (8000 may be taken on a shared machine), with its baked-in demo model.
wait_healthy() {  # the container id; Docker's own health check (/readyz) decides
    local status=starting
    for _ in $(seq 1 300); do
        status=$(docker inspect --format '{{.State.Health.Status}}' "$1")
        [[ $status == healthy ]] && return 0
        [[ $(docker inspect --format '{{.State.Running}}' "$1") == true ]] || { echo "container exited" >&2; return 1; }
        sleep 1
    done
    echo "not healthy after 300 s: $status" >&2
    return 1
}
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
t=$(date +%s)
compose up -d maskrcnn-cpu >&2
CID=$(compose ps -q maskrcnn-cpu)
wait_healthy "$CID"
HEALTHY_S=$(($(date +%s) - t))
log "healthy $HEALTHY_S s after docker-compose up (http://127.0.0.1:$PORT)"

# 5. A photo in, COCO RLE out: every mask decodes to the image's size.
curl -fsS --max-time 120 -F image=@tests/fixtures/chelsea.jpg \
    "http://127.0.0.1:$PORT/detect?score_threshold=0" -o "$WORK/detect.json"
"$PY" - "$WORK/detect.json" tests/fixtures/chelsea.jpg <<'PYEOF'
import json
import sys

from PIL import Image
from pycocotools import mask as mask_utils

body = json.load(open(sys.argv[1]))
width, height = Image.open(sys.argv[2]).size
assert body["image"] == {"width": width, "height": height}, body["image"]
detections = body["detections"]
assert detections, "no detections at score_threshold=0"
for det in detections:
    rle = det["segmentation"]
    assert rle["size"] == [height, width], rle["size"]
    decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    assert decoded.shape == (height, width), decoded.shape
    assert int(decoded.sum()) == int(mask_utils.area(rle | {"counts": rle["counts"].encode()}))
print(f"{len(detections)} detections, every mask decodes to {height}x{width}; timing_ms {body['timing_ms']}")
PYEOF
curl -fsS "http://127.0.0.1:$PORT/metrics" | grep -q '^maskrcnn_queue_depth ' ||
    { echo "/metrics lacks maskrcnn_queue_depth, the HPA's metric" >&2; exit 1; }

# 6. Weights from the read-only /models mount (compose's default source is ./models/assets): the service reports
# the mounted file's hash. Changing the environment makes compose recreate the container.
t=$(date +%s)
MASKRCNN_WEIGHTS=/models/demo.safetensors compose up -d maskrcnn-cpu >&2
CID=$(compose ps -q maskrcnn-cpu)
wait_healthy "$CID"
served=$(curl -fsS "http://127.0.0.1:$PORT/v1/model" |
    "$PY" -c 'import json, sys; print(json.load(sys.stdin)["weights_sha256"])')
[[ $served == "$(sha256sum models/assets/demo.safetensors | cut -d' ' -f1)" ]] ||
    { echo "the service does not serve /models/demo.safetensors ($served)" >&2; exit 1; }
log "weights from the /models mount served, healthy $(($(date +%s) - t)) s after recreation"

# 7. Graceful stop within stop_grace_period: exit status 0, not a SIGKILL's 137.
t=$(date +%s)
compose stop >&2
EXIT_CODE=$(docker inspect --format '{{.State.ExitCode}}' "$CID")
[[ $EXIT_CODE == 0 ]] || { echo "stopped with exit status $EXIT_CODE" >&2; exit 1; }
log "stopped gracefully in $(($(date +%s) - t)) s"

echo "SMOKE OK image_bytes=$SIZE build_s=$BUILD_S healthy_s=$HEALTHY_S total_s=$(($(date +%s) - T0))"
