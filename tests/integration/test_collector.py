"""A real Collector in front: OpenTelemetry SDK -> rotel (OTLP in, OTLP/gRPC out with gzip) -> sidecar -> Iceberg."""

from __future__ import annotations

import logging
import pathlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tests.integration.server import ServerProcess, free_port
from tests.tools import tool

pytestmark = pytest.mark.integration
RESOURCE = Resource.create({"service.name": "via-rotel"})


class Rotel:
    """rotel-agent receiving OTLP and exporting OTLP/gRPC (gzip) to the sidecar, as a Collector would."""

    def __init__(self, tmp_path: pathlib.Path, sidecar: ServerProcess) -> None:
        self.receiver = f"127.0.0.1:{free_port()}"
        self.log_path = tmp_path / "rotel.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [str(tool("rotel-agent")), "start", "--otlp-grpc-endpoint", self.receiver,
             "--otlp-http-endpoint", f"127.0.0.1:{free_port()}", "--pid-file", str(tmp_path / "rotel.pid"),
             "--exporter", "otlp", "--otlp-exporter-endpoint", f"http://{sidecar.address}",
             "--otlp-exporter-protocol", "grpc", "--otlp-exporter-compression", "gzip"],
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not _listening(self.receiver):
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log_path.read_text()
            time.sleep(0.1)

    def stop(self) -> int:
        """SIGTERM: rotel drains what it holds to the sidecar before it exits."""
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(60)
        self._log.close()
        return code


def _listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) == 0


@pytest.fixture
def rotel(tmp_path: pathlib.Path, start_server: Callable[..., ServerProcess]) -> Iterator[tuple[Rotel, ServerProcess]]:
    server = start_server()
    collector = Rotel(tmp_path, server)
    try:
        yield collector, server
    finally:
        collector.stop()


def _rows(server: ServerProcess, table: str) -> list[dict]:
    try:
        return server.table(table).scan().to_arrow().to_pylist()
    except Exception:  # not created yet
        return []


def test_sdk_through_rotel_to_iceberg_for_all_signals(rotel: tuple[Rotel, ServerProcess]) -> None:
    collector, server = rotel
    receiver = collector.receiver
    tracer_provider = TracerProvider(resource=RESOURCE)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver, insecure=True)))
    tracer = tracer_provider.get_tracer("rotel.e2e")
    for i in range(30):
        with tracer.start_as_current_span(f"op-{i % 3}", attributes={"i": i}):
            pass
    tracer_provider.shutdown()

    logger_provider = LoggerProvider(resource=RESOURCE)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=receiver, insecure=True)))
    logger = logging.getLogger("rotel.e2e")
    logger.propagate = False
    handler = LoggingHandler(logger_provider=logger_provider)
    logger.addHandler(handler)
    for i in range(12):
        logger.error("log line %d", i)
    logger_provider.shutdown()
    logger.removeHandler(handler)

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=receiver, insecure=True),
                                           export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter_provider.get_meter("rotel.e2e").create_counter("jobs").add(5, {"queue": "a"})
    meter_provider.shutdown()

    assert collector.stop() == 0, collector.log_path.read_text()
    assert server.stop() == 0, server.log()
    spans = _rows(server, "traces")
    assert sorted(r["SpanName"] for r in spans) == sorted(f"op-{i % 3}" for i in range(30))
    assert {r["ServiceName"] for r in spans} == {"via-rotel"}
    assert sorted(int(dict(r["SpanAttributes"])["i"]) for r in spans) == list(range(30))
    logs = _rows(server, "logs")
    assert sorted(r["Body"] for r in logs) == sorted(f"log line {i}" for i in range(12))
    assert {r["SeverityText"] for r in logs} == {"ERROR"}
    (jobs,) = [r for r in _rows(server, "metrics_sum") if r["MetricName"] == "jobs"]
    assert (jobs["Value"], dict(jobs["Attributes"])) == (5.0, {"queue": "a"})

