"""The README's grpcurl commands, run verbatim (bash, .tools/ on PATH) against a real sidecar."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

import pytest

from tests.integration.server import ServerProcess
from tests.test_readme import ROOT, blocks
from tests.tools import tool

pytestmark = pytest.mark.integration


def grpcurl_blocks() -> list[str]:
    found = [b for b in blocks("sh") if b.lstrip().startswith("grpcurl")]
    assert len(found) == 2, "the README has a block of inspection commands and a block of exports"
    return found


def _bash(script: str, server: ServerProcess) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{tool('grpcurl').parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", "-c", "set -e\n" + script.replace("127.0.0.1:4317", server.address)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def _check_rows(server: ServerProcess) -> None:
    (span,) = server.table("traces").scan().to_arrow().to_pylist()
    assert (span["SpanName"], span["TraceId"], span["SpanId"], span["SpanKind"], span["Duration"]) == \
        ("smoke-span", "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "Server", 250_000_000)
    (log,) = server.table("logs").scan().to_arrow().to_pylist()
    assert (log["Body"], log["SeverityText"], log["TraceId"]) == ("smoke-log", "INFO", span["TraceId"])
    (point,) = server.table("metrics_gauge").scan().to_arrow().to_pylist()
    assert (point["MetricName"], point["Value"], point["ServiceName"]) == ("smoke.gauge", 42.5, "grpcurl")


def test_readme_grpcurl_commands_with_reflection(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server()
    inspect, exports = grpcurl_blocks()
    done = _bash(inspect, server)
    assert done.returncode == 0, done.stderr
    assert "opentelemetry.proto.collector.trace.v1.TraceService" in done.stdout
    assert "rpc Export ( .opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest )" in done.stdout
    assert '"status": "SERVING"' in done.stdout
    done = _bash(exports, server)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["{", "}"] * 3, "three plain successes, no partial_success"
    assert server.stop() == 0
    _check_rows(server)


def test_readme_grpcurl_commands_without_reflection_use_the_protoset(
        start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(env={"OTLP2PARQUET_SERVER__REFLECTION": "false"})
    inspect, exports = grpcurl_blocks()
    refused = _bash("grpcurl -plaintext 127.0.0.1:4317 list", server)
    assert refused.returncode != 0 and "does not support the reflection API" in refused.stderr
    with_protoset = "-plaintext -protoset protos/otlp.protoset"
    done = _bash(inspect.replace("-plaintext", with_protoset), server)
    assert done.returncode == 0, done.stderr
    assert "opentelemetry.proto.collector.logs.v1.LogsService" in done.stdout
    assert '"status": "SERVING"' in done.stdout
    done = _bash(exports.replace("-plaintext", with_protoset), server)
    assert done.returncode == 0, done.stderr
    assert server.stop() == 0
    _check_rows(server)


def test_a_hex_id_pasted_into_grpcurl_is_reported_not_silently_stored(
        start_server: Callable[..., ServerProcess]) -> None:
    server = start_server()
    _, exports = grpcurl_blocks()
    trace_export = exports.split("EOF\n")[0] + "EOF\n"
    hexed = trace_export.replace("W47/95gDgQPSabYzgT/GDA==", "5b8efff798038103d269b633813fc60c")
    done = _bash(hexed, server)
    assert done.returncode == 0, done.stderr
    assert '"rejected_spans": "1"' in done.stdout and "trace_id must be 0 or 16 bytes" in done.stdout
    assert server.stop() == 0
