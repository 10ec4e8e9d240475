"""The Helm chart with the real helm binary: lint, render every mode, check the manifests, reject bad values."""

from __future__ import annotations

import pathlib
import subprocess
from typing import Any

import pytest
import yaml

from otlp2parquet.config import load_settings
from tests.tools import ROOT, tool

CHART = ROOT / "helm" / "otlp2parquet"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tool("helm")), *args], capture_output=True, text=True, timeout=120)


def render(*sets: str, kube: str = "1.31.0") -> dict[str, Any]:
    """helm template with --set values; returns the manifests by kind (and by name for ConfigMaps/Services)."""
    args = ["template", "t", str(CHART), "--kube-version", kube]
    for s in sets:
        args += ["--set", s]
    done = helm(*args)
    assert done.returncode == 0, done.stderr
    manifests: dict[str, Any] = {}
    for doc in yaml.safe_load_all(done.stdout):
        if doc:
            key = doc["kind"] if doc["kind"] not in ("Service", "Pod") else f"{doc['kind']}/{doc['metadata']['name']}"
            manifests[key] = doc
    return manifests


def workload(manifests: dict[str, Any]) -> dict[str, Any]:
    (kind,) = [k for k in manifests if k in ("Deployment", "DaemonSet", "StatefulSet")]
    return manifests[kind]


def sidecar(manifests: dict[str, Any]) -> dict[str, Any]:
    spec = workload(manifests)["spec"]["template"]["spec"]
    (container,) = [c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == "otlp2parquet"]
    return container


def test_the_chart_ships_the_repository_collector_config() -> None:
    assert (CHART / "files" / "collector-config.yaml").read_text() == (ROOT / "collector-config.yaml").read_text()


@pytest.mark.parametrize("mode", ["deployment", "daemonset", "statefulset"])
def test_lint_passes_in_every_mode(mode: str) -> None:
    done = helm("lint", str(CHART), "--set", f"mode={mode}")
    assert done.returncode == 0, done.stdout + done.stderr


def test_default_render_is_a_native_sidecar_next_to_the_collector() -> None:
    m = render()
    pod = workload(m)["spec"]["template"]["spec"]
    assert workload(m)["kind"] == "Deployment"
    (init,) = pod["initContainers"]
    assert (init["name"], init["restartPolicy"]) == ("otlp2parquet", "Always")
    assert init["startupProbe"]["grpc"] == {"port": 4319, "service": ""}
    assert init["readinessProbe"]["grpc"] == {"port": 4319, "service": ""}
    assert init["livenessProbe"] == {"httpGet": {"path": "/healthz", "port": "sidecar-metrics"},
                                     "periodSeconds": 10, "failureThreshold": 6}
    assert [c["name"] for c in pod["containers"]] == ["collector"]
    assert init["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}}
    mounts = {v["name"]: v["mountPath"] for v in init["volumeMounts"]}
    assert mounts["data"] == "/data" and mounts["tmp"] == "/tmp"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["emptyDir"] == {"sizeLimit": "2Gi"}
    assert pod["terminationGracePeriodSeconds"] == 90
    env = {e["name"]: e for e in init["env"]}
    assert env["OTLP2PARQUET_WRITER__WRITER_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    annotations = workload(m)["spec"]["template"]["metadata"]["annotations"]
    assert len(annotations["checksum/config"]) == 64
    labels = workload(m)["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "otlp2parquet"
    assert labels["app.kubernetes.io/part-of"] == "opentelemetry-collector"
    assert m["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert "Pod/t-otlp2parquet-test-health" in m


def _configs(m: dict[str, Any]) -> tuple[dict[str, Any], str]:
    data = m["ConfigMap"]["data"]
    return yaml.safe_load(data["collector-config.yaml"]), data["otlp2parquet.toml"]


def test_the_collector_points_at_the_sidecar_and_the_sidecar_config_loads(tmp_path: pathlib.Path) -> None:
    m = render("sidecar.port=4320", "collector.exporterCompression=none", "sidecar.config.buffer.max_age_s=10")
    collector, toml = _configs(m)
    exporter = collector["exporters"]["otlp_grpc/parquet"]
    assert (exporter["endpoint"], exporter["compression"], exporter["tls"]) == ("127.0.0.1:4320", "none",
                                                                               {"insecure": True})
    assert set(collector["service"]["pipelines"]) == {"traces", "metrics", "logs"}
    assert all(p["exporters"] == ["otlp_grpc/parquet"] for p in collector["service"]["pipelines"].values())
    (tmp_path / "sidecar.toml").write_text(toml)
    settings = load_settings(tmp_path / "sidecar.toml", environ={})
    assert settings.server.listen == "0.0.0.0:4320"  # the kubelet's gRPC probes reach the pod IP
    assert (settings.buffer.max_age_s, settings.buffer.max_bytes, settings.buffer.max_rows) == (10, 32 * 2**20, 10**6)
    assert (settings.writer.base_path, settings.wal_dir()) == ("/data", pathlib.Path("/data/wal"))
    assert settings.telemetry.listen == "0.0.0.0:9464"
    assert settings.server.convert_processes == 0  # worker processes would not fit the default memory limit
    assert sidecar(m)["ports"] == [{"name": "sidecar-grpc", "containerPort": 4320, "protocol": "TCP"},
                                   {"name": "sidecar-metrics", "containerPort": 9464, "protocol": "TCP"}]
    assert m["Service/t-otlp2parquet-sidecar"]["spec"]["ports"][0]["port"] == 4320


def test_a_config_change_rolls_the_pods() -> None:
    before = workload(render())["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    after = workload(render("sidecar.config.buffer.max_age_s=5"))["spec"]["template"]["metadata"]["annotations"]
    assert after["checksum/config"] != before


def test_secrets_come_from_existing_secrets_only() -> None:
    m = render("sidecar.secretEnv[0].name=OTLP2PARQUET_CATALOG_URI", "sidecar.secretEnv[0].secretName=catalog",
               "sidecar.secretEnv[0].key=uri")
    env = {e["name"]: e for e in sidecar(m)["env"]}
    assert env["OTLP2PARQUET_CATALOG_URI"]["valueFrom"] == {"secretKeyRef": {"name": "catalog", "key": "uri"}}


def test_extra_containers_mode_for_older_clusters() -> None:
    m = render("sidecar.containerMode=extraContainers", kube="1.27.0")
    pod = workload(m)["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    (writer,) = [c for c in pod["containers"] if c["name"] == "otlp2parquet"]
    assert "time.sleep(20)" in " ".join(writer["lifecycle"]["preStop"]["exec"]["command"])


def test_native_mode_refuses_an_old_cluster() -> None:
    done = helm("template", "t", str(CHART), "--kube-version", "1.27.0")
    assert done.returncode != 0 and "needs Kubernetes >= 1.29" in done.stderr


def test_statefulset_gets_a_volume_per_pod() -> None:
    m = render("mode=statefulset", "sidecar.wal.type=volumeClaimTemplate", "sidecar.wal.size=20Gi")
    (claim,) = workload(m)["spec"]["volumeClaimTemplates"]
    assert (claim["metadata"]["name"], claim["spec"]["resources"]["requests"]["storage"]) == ("data", "20Gi")
    assert workload(m)["spec"]["serviceName"] == "t-otlp2parquet"


def test_daemonset_has_no_replicas_or_pdb() -> None:
    m = render("mode=daemonset")
    assert "replicas" not in workload(m)["spec"] and "PodDisruptionBudget" not in m


def test_service_monitor_scrapes_the_sidecar_metrics_port() -> None:
    m = render("serviceMonitor.enabled=true")
    (endpoint,) = m["ServiceMonitor"]["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("sidecar-metrics", "/metrics")
    assert "ServiceMonitor" not in render()


@pytest.mark.parametrize(("setting", "message"), [
    ("sidecar.metricsPort=4319", "sidecar.metricsPort collides"),
    ("sidecar.port=4317", "/sidecar/port"),
    ("sidecar.port=13133", "/sidecar/port"),
    ("collector.exporterCompression=zstd", "exporterCompression"),
    ("mode=cronjob", "mode"),
    ("sidecar.bogus=1", "bogus"),
    ("sidecar.secretEnv[0].name=TOKEN", "secretEnv"),
    ("sidecar.wal.type=volumeClaimTemplate", "needs mode statefulset"),
    ("sidecar.wal.type=persistentVolumeClaim", "needs sidecar.wal.existingClaim"),
])
def test_bad_values_are_refused(setting: str, message: str) -> None:
    done = helm("template", "t", str(CHART), "--kube-version", "1.31.0", "--set", setting)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr


def _doc_blocks(language: str) -> list[str]:
    import re

    return re.findall(rf"```{language}\n(.*?)```", (ROOT / "docs" / "helm.md").read_text(), flags=re.S)


def test_docs_install_command_renders_and_names_the_sidecar_service() -> None:
    install = _doc_blocks("sh")[0].replace("\\\n", " ").splitlines()[0].split()
    assert install[:4] == ["helm", "install", "otel", "./helm/otlp2parquet"]
    args = ["template", *install[2:]]
    args[2] = str(CHART)
    done = helm(*[a for a in args if a != "--create-namespace"], "--kube-version", "1.31.0")
    assert done.returncode == 0, done.stderr
    names = {d["metadata"]["name"] for d in yaml.safe_load_all(done.stdout) if d and d["kind"] == "Service"}
    port_forward = _doc_blocks("sh")[1].splitlines()[0]
    assert "svc/otel-otlp2parquet-sidecar 4319" in port_forward and "otel-otlp2parquet-sidecar" in names


def test_docs_values_for_the_official_chart_are_consistent() -> None:
    (snippet,) = _doc_blocks("yaml")
    values = yaml.safe_load(snippet)
    (writer,) = values["initContainers"]
    env = {e["name"]: e.get("value") for e in writer["env"]}
    port = int(env["OTLP2PARQUET_LISTEN"].rsplit(":", 1)[1])
    exporter = values["config"]["exporters"]["otlp_grpc/parquet"]
    assert exporter["endpoint"] == f"127.0.0.1:{port}" and exporter["compression"] in ("gzip", "none")
    assert writer["restartPolicy"] == "Always" and writer["startupProbe"]["grpc"]["port"] == port
    volumes = {v["name"] for v in values["extraVolumes"]}
    assert {m["name"] for m in writer["volumeMounts"]} == volumes
    assert all(p["exporters"] == ["otlp_grpc/parquet"] for p in values["config"]["service"]["pipelines"].values())
