"""docker-compose.yml: the GPU service reserves an NVIDIA GPU, the CPU service (profile "cpu") reserves none,
and both publish 8000, health-check /readyz, mount the weights read-only and outlast the service's drain.

Checked twice: with `docker-compose config` (v1) or `docker compose config` (v2) when one is installed, which
is what Compose itself accepts after interpolation and merging, and at the YAML level everywhere."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
GPU, CPU = "maskrcnn", "maskrcnn-cpu"

Service = dict[str, Any]


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def yaml_services() -> dict[str, Service]:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


@pytest.fixture(scope="module")
def compose_services() -> dict[str, Service]:
    """The services as Compose resolves them (defaults interpolated, anchors merged), both profiles on."""
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` (v2) nor `docker-compose` (v1) is installed: Compose's own check skipped")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MASKRCNN_", "COMPOSE_"))}
    environ["COMPOSE_PROFILES"] = "cpu"  # v2 prints only active profiles' services
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config"], capture_output=True, text=True, env=environ, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def devices(service: Service) -> list[dict[str, Any]]:
    return ((service.get("deploy") or {}).get("resources") or {}).get("reservations", {}).get("devices") or []


def seconds(duration: str | int | float) -> float:
    """Compose durations: 45s, 1m30s, 2m, or a number of seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def published_port(service: Service) -> tuple[int, int]:
    """(host, container) from either the short "8000:8000" syntax or the long one Compose prints."""
    (port,) = service["ports"]
    if isinstance(port, dict):
        return int(port["published"]), int(port["target"])
    host, container = re.sub(r"\$\{[A-Z_]+:-(\d+)\}", r"\1", port).split(":")
    return int(host), int(container)


def check_gpu_reserved_and_cpu_not(services: dict[str, Service]) -> None:
    (device,) = devices(services[GPU])
    assert device["driver"] == "nvidia"
    assert device["count"] == 1
    assert "gpu" in device["capabilities"]
    assert devices(services[CPU]) == []
    assert "cpu" in services[CPU]["profiles"]
    assert not services[GPU].get("profiles")  # a plain `up` starts the GPU service


def check_serving_facts(service: Service) -> None:
    assert published_port(service) == (8000, 8000)
    test = service["healthcheck"]["test"]
    assert any("/readyz" in part for part in test)
    environment = service["environment"]
    assert {"MASKRCNN_DEVICE", "MASKRCNN_REQUEST_TIMEOUT_S", "MASKRCNN_WEIGHTS"} <= environment.keys()
    assert environment["MASKRCNN_WEIGHTS"] is None  # passed through only when set: unset serves the demo model
    (volume,) = service["volumes"]
    assert volume["target"] == "/models"
    assert volume["read_only"] is True
    drain = float(environment["MASKRCNN_REQUEST_TIMEOUT_S"]) + 5  # service.cli: timeout_graceful_shutdown
    assert seconds(service["stop_grace_period"]) > drain
    assert service["restart"] in {"unless-stopped", "always", "on-failure"}
    assert service["read_only"] is True  # as in deploy/k8s: the service writes nothing to disk
    assert any(str(mount).startswith("/tmp") for mount in service["tmpfs"])


def test_compose_config_accepts_the_file_and_reserves_a_gpu_only_for_the_gpu_service(
    compose_services: dict[str, Service],
) -> None:
    check_gpu_reserved_and_cpu_not(compose_services)
    assert compose_services[GPU]["shm_size"] in {"1gb", 1073741824, "1073741824"}


@pytest.mark.parametrize("name", [GPU, CPU])
def test_compose_config_serves_both_variants_on_8000_with_readyz_health_and_read_only_weights(
    compose_services: dict[str, Service], name: str
) -> None:
    check_serving_facts(compose_services[name])


def test_compose_config_sets_the_cpu_variant_to_the_cpu_device(compose_services: dict[str, Service]) -> None:
    assert compose_services[CPU]["environment"]["MASKRCNN_DEVICE"] == "cpu"
    assert compose_services[GPU]["environment"]["MASKRCNN_DEVICE"] == "auto"


def test_yaml_reserves_a_gpu_only_for_the_gpu_service() -> None:
    check_gpu_reserved_and_cpu_not(yaml_services())


@pytest.mark.parametrize("name", [GPU, CPU])
def test_yaml_serves_both_variants_on_8000_with_readyz_health_and_read_only_weights(name: str) -> None:
    check_serving_facts(yaml_services()[name])


def test_compose_file_has_no_version_key_so_v1_and_v2_read_it_alike() -> None:
    assert "version" not in yaml.safe_load(COMPOSE_FILE.read_text())


def test_seconds_reads_compose_durations() -> None:
    assert seconds("45s") == 45
    assert seconds("1m30s") == 90
    assert seconds("2m") == 120
