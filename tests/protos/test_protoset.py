"""The committed protoset matches the installed OTLP descriptors and holds every service grpcurl needs."""

from __future__ import annotations

import importlib.util
import pathlib

from google.protobuf import descriptor_pb2

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("protos_generate", ROOT / "protos" / "generate.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_protoset_is_current() -> None:
    assert (ROOT / "protos" / "otlp.protoset").read_bytes() == _generator().protoset(), \
        "run: .venv/bin/python protos/generate.py"


def test_protoset_has_the_otlp_services_and_health() -> None:
    fds = descriptor_pb2.FileDescriptorSet.FromString((ROOT / "protos" / "otlp.protoset").read_bytes())
    services = {f"{f.package}.{s.name}" for f in fds.file for s in f.service}
    assert services == {"opentelemetry.proto.collector.trace.v1.TraceService",
                        "opentelemetry.proto.collector.logs.v1.LogsService",
                        "opentelemetry.proto.collector.metrics.v1.MetricsService", "grpc.health.v1.Health"}
    names = [f.name for f in fds.file]
    for f in fds.file:  # dependencies come first, as grpcurl requires
        assert all(names.index(dep) < names.index(f.name) for dep in f.dependency)
