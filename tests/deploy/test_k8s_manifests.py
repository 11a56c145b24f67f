"""deploy/k8s/: every document validates against the Kubernetes OpenAPI schemas (strict: unknown fields fail),
and the facts the service relies on hold (GPU request, probes, non-root, drain time, HPA metric)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))
# The oldest Kubernetes still in upstream support when these were written, and the newest the validator knows.
K8S_VERSIONS = ["1.32.0", "latest"]
VARIANTS = ["gpu.yaml", "cpu.yaml"]

Doc = dict[str, Any]


def documents(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def find(path: Path, kind: str) -> Doc:
    (doc,) = [d for d in documents(path) if d["kind"] == kind]
    return doc


def container(deployment: Doc) -> Doc:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env(deployment: Doc) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container(deployment)["env"]}


def kubernetes_validate() -> Any:
    return pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate is not installed (pip install kubernetes-validate): schemas not checked",
    )


def all_documents() -> Iterator[tuple[str, int, Doc]]:
    for path in MANIFESTS:
        for index, doc in enumerate(documents(path)):
            yield path.name, index, doc


def test_manifests_exist_for_both_variants_and_the_shared_objects() -> None:
    names = {p.name for p in MANIFESTS}
    assert {"service.yaml", "gpu.yaml", "cpu.yaml", "prometheus-adapter.yaml"} <= names


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_document_of_every_manifest_validates_strictly_against_the_kubernetes_schemas(version: str) -> None:
    kv = kubernetes_validate()
    version = kv.latest_version() if version == "latest" else version
    checked = 0
    for name, index, doc in all_documents():
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            pytest.fail(f"{name} document {index} ({doc.get('kind')}) invalid for Kubernetes {version}: {exc}")
        checked += 1
    assert checked >= 7  # Service, PDB, 2 x (Deployment, HPA), adapter ConfigMap


def test_strict_validation_rejects_a_misspelt_field_so_the_schema_check_is_real() -> None:
    kv = kubernetes_validate()
    deployment = find(K8S / "gpu.yaml", "Deployment")
    container(deployment)["readinesProbe"] = container(deployment).pop("readinessProbe")
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, kv.latest_version(), strict=True)


def test_gpu_deployment_requests_one_gpu_and_the_cpu_one_none() -> None:
    gpu = container(find(K8S / "gpu.yaml", "Deployment"))["resources"]
    assert gpu["limits"]["nvidia.com/gpu"] == 1
    assert gpu["requests"]["nvidia.com/gpu"] == 1
    assert env(find(K8S / "gpu.yaml", "Deployment"))["MASKRCNN_DEVICE"] == "cuda"
    cpu = container(find(K8S / "cpu.yaml", "Deployment"))["resources"]
    assert "nvidia.com/gpu" not in cpu["limits"] and "nvidia.com/gpu" not in cpu["requests"]
    assert env(find(K8S / "cpu.yaml", "Deployment"))["MASKRCNN_DEVICE"] == "cpu"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_container_sets_memory_requests_and_limits(variant: str) -> None:
    resources = container(find(K8S / variant, "Deployment"))["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert "memory" in resources["limits"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_startup_and_readiness_probe_readyz_and_liveness_probes_healthz(variant: str) -> None:
    c = container(find(K8S / variant, "Deployment"))
    assert c["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    port_names = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert port_names[c[probe]["httpGet"]["port"]] == 8000


@pytest.mark.parametrize("variant", VARIANTS)
def test_pods_run_as_uid_1000_non_root_read_only_without_capabilities(variant: str) -> None:
    deployment = find(K8S / variant, "Deployment")
    pod = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == 1000
    c = container(deployment)["securityContext"]
    assert c["allowPrivilegeEscalation"] is False
    assert c["readOnlyRootFilesystem"] is True
    assert c["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_termination_grace_outlasts_the_prestop_sleep_plus_the_service_drain(variant: str) -> None:
    deployment = find(K8S / variant, "Deployment")
    pre_stop = container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = float(env(deployment)["MASKRCNN_REQUEST_TIMEOUT_S"]) + 5  # service.cli: timeout_graceful_shutdown
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(pre_stop[1]) + drain


@pytest.mark.parametrize("variant", VARIANTS)
def test_service_selects_the_deployment_pods_on_port_8000(variant: str) -> None:
    service = find(K8S / "service.yaml", "Service")
    deployment = find(K8S / variant, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == 8000
    assert port["targetPort"] in {p["name"] for p in container(deployment)["ports"]}


def exported_metric_names() -> set[str]:
    from service.metrics import Metrics

    return {metric.name for metric in Metrics().registry.collect()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_hpa_scales_its_deployment_on_queue_depth_pods_metric_with_cpu_as_fallback(variant: str) -> None:
    hpa = find(K8S / variant, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    deployment = find(K8S / variant, "Deployment")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "maskrcnn"}
    assert deployment["metadata"]["name"] == "maskrcnn"
    by_type = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert by_type["Pods"]["pods"]["metric"]["name"] == "maskrcnn_queue_depth"
    assert by_type["Resource"]["resource"]["name"] == "cpu"
    assert "maskrcnn_queue_depth" in exported_metric_names()


def test_prometheus_adapter_rule_publishes_the_metric_the_hpas_read_per_pod() -> None:
    config = yaml.safe_load(find(K8S / "prometheus-adapter.yaml", "ConfigMap")["data"]["config.yaml"])
    (rule,) = config["rules"]
    assert rule["seriesQuery"].startswith("maskrcnn_queue_depth{")
    assert rule["name"]["as"] == "maskrcnn_queue_depth"
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}
    for variant in VARIANTS:
        hpa = find(K8S / variant, "HorizontalPodAutoscaler")
        assert any(
            m.get("pods", {}).get("metric", {}).get("name") == rule["name"]["as"] for m in hpa["spec"]["metrics"]
        )
