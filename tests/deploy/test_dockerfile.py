"""Dockerfile and .dockerignore: the facts deployments rely on, read from the files (building the image is
docker/smoke-test.sh's job, too slow for `make test`)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(m[1].upper(), m[2].strip()) for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", joined, re.M)]


def runtime_stage() -> list[tuple[str, str]]:
    result = instructions()
    starts = [i for i, (op, _) in enumerate(result) if op == "FROM"]
    return result[starts[-1] :]


def test_base_image_is_a_build_argument_defaulting_to_debian_bookworm_slim() -> None:
    assert ("ARG", "BASE_IMAGE=debian:bookworm-slim") in instructions()
    froms = [args.split() for op, args in instructions() if op == "FROM"]
    assert len(froms) >= 2  # multi-stage
    stages: set[str] = set()
    for image, *alias in froms:
        assert image == "${BASE_IMAGE}" or image in stages, f"FROM {image}: neither BASE_IMAGE nor an earlier stage"
        stages.update(alias[1:])  # ["AS", name]
    assert froms[-1][0] == "${BASE_IMAGE}"  # the runtime stage starts afresh from the base


def test_runtime_stage_runs_maskrcnn_serve_on_8000_as_uid_1000_with_a_readyz_healthcheck() -> None:
    stage = dict(runtime_stage())
    assert stage["USER"].split(":")[0] == "1000"
    assert stage["EXPOSE"] == "8000"
    assert "/readyz" in stage["HEALTHCHECK"]
    assert stage["CMD"] == '["maskrcnn", "serve", "--host", "0.0.0.0", "--port", "8000"]'
    assert "MASKRCNN_DEVICE=auto" in stage["ENV"]


def test_runtime_stage_installs_no_compiler_and_copies_the_venv_and_the_project_as_separate_layers() -> None:
    stage = runtime_stage()
    installs = " ".join(args for op, args in stage if op == "RUN")
    for tool in ("gcc", "g++", "build-essential", "python3-dev", "python3-pip", "curl"):
        assert tool not in installs.split()
    assert ("COPY", "--from=deps /opt/venv /opt/venv") in stage
    assert ("COPY", "--from=app /opt/app /opt/app") in stage


def test_project_is_installed_as_a_package_not_editable() -> None:
    runs = " ".join(args for op, args in instructions() if op == "RUN")
    assert re.search(r"pip install --no-deps --target /opt/app \.(\s|$)", runs)
    assert "pip install -e" not in runs and "--editable" not in runs


def test_extra_ca_is_a_build_secret_never_copied_into_a_layer() -> None:
    runs = [args for op, args in instructions() if op == "RUN" and "extra_ca" in args]
    assert runs and all("--mount=type=secret,id=extra_ca" in args for args in runs)
    assert not [args for op, args in instructions() if op in {"COPY", "ADD"} and re.search(r"\.(pem|crt)\b", args)]


def test_torch_wheels_switch_between_the_index_and_local_wheels() -> None:
    assert ("ARG", "TORCH_WHEELS=index") in instructions()
    assert "--no-index --find-links /wheels" in DOCKERFILE


def test_dockerignore_keeps_venvs_git_caches_and_tests_out_of_the_build_context() -> None:
    patterns = [
        line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip() and line[0] != "#"
    ]
    assert patterns[0] == "*"  # an allow-list: anything new stays out until named
    allowed = {p[1:] for p in patterns if p.startswith("!")}
    assert allowed <= {
        "pyproject.toml",
        "README.md",
        "maskrcnn_cli.py",
        "models",
        "service",
        "trainer",
        "docker/wheels",
        "docker/with-extra-ca.sh",
    }
    assert not allowed & {".venv", ".git", "tests", ".pytest_cache", "bench"}
