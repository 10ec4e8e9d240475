"""The OpenTelemetry Python SDK's OTLP gRPC exporters -> a real server process -> Iceberg; read back exactly."""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otlp2parquet.convert._values import format_double
from tests.duck import connect
from tests.integration.server import ServerProcess
from tests.otlp import kv

pytestmark = pytest.mark.integration
RESOURCE = Resource.create({"service.name": "shop-api", "deployment.environment.name": "test"})


def _text(value: object) -> str:
    """ClickHouse attribute text; doubles per format_double, which test_values pins with literal cases."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return format_double(value) if isinstance(value, float) else str(value)


def _send_traces(address: str) -> list:
    provider = TracerProvider(resource=RESOURCE)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=address, insecure=True)))
    tracer = provider.get_tracer("e2e.tracer", "1.2.3")
    for i in range(40):
        with tracer.start_as_current_span(f"GET /item/{i % 4}", attributes={"item.id": i, "cache.hit": i % 2 == 0,
                                                                            "ratio": i / 8}) as span:
            span.add_event("lookup", {"attempt": 1})
            with tracer.start_as_current_span("db.query"):
                pass
    assert provider.force_flush()
    provider.shutdown()
    return list(memory.get_finished_spans())


def _send_logs(address: str) -> None:
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=address, insecure=True)))
    logger = logging.getLogger("e2e.logs")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    for i in range(25):
        logger.warning("order %d failed", i, extra={"order.id": i})
    logger.info("all done")
    provider.force_flush()
    provider.shutdown()
    logger.removeHandler(handler)


def _send_metrics(address: str) -> None:
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=address, insecure=True),
                                           export_interval_millis=3_600_000)
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader],
                             views=[View(instrument_name="payload.size",
                                         aggregation=ExponentialBucketHistogramAggregation())])
    meter = provider.get_meter("e2e.meter")
    meter.create_counter("requests", unit="{request}").add(7, {"route": "/a"})
    meter.create_up_down_counter("queue.depth").add(-3)
    latency = meter.create_histogram("latency", unit="ms")
    for v in (5, 15, 150):
        latency.record(v, {"route": "/a"})
    size = meter.create_histogram("payload.size", unit="By")
    for v in (100, 200, 400, 800):
        size.record(v)

    def temperature(options: CallbackOptions) -> list[Observation]:
        return [Observation(21.5, {"room": "lab"})]

    meter.create_observable_gauge("temperature", callbacks=[temperature], unit="Cel")
    provider.shutdown()  # one final collection and export (a force_flush too would export every point twice)


def _send_summary(address: str) -> None:
    """The SDK cannot produce summaries (Prometheus receivers do), so send one as a Collector would."""
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(kv("service.name", "shop-api"))
    metric = rm.scope_metrics.add().metrics.add(name="rpc.duration.summary", unit="ms")
    point = metric.summary.data_points.add(time_unix_nano=1_767_225_600_000_000_000, count=3, sum=12.0)
    point.quantile_values.add(quantile=0.5, value=4.0)
    with grpc.insecure_channel(address) as channel:
        response = metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(req, timeout=10)
    assert not response.HasField("partial_success")


def test_sdk_traces_logs_and_metrics_land_in_iceberg(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server()
    spans = _send_traces(server.address)
    _send_logs(server.address)
    _send_metrics(server.address)
    _send_summary(server.address)
    assert server.stop() == 0, server.log()

    traces = server.table("traces").scan().to_arrow()
    assert traces.num_rows == len(spans) == 80
    by_id = {row["SpanId"]: row for row in traces.to_pylist()}
    for span in spans:
        row = by_id[f"{span.context.span_id:016x}"]
        assert row["TraceId"] == f"{span.context.trace_id:032x}"
        assert row["SpanName"] == span.name
        assert row["ServiceName"] == "shop-api"
        assert row["ScopeName"] == "e2e.tracer" and row["ScopeVersion"] == "1.2.3"
        assert row["Duration"] == span.end_time - span.start_time
        assert int(row["Timestamp"].timestamp() * 1_000_000) == span.start_time // 1000
        assert row["ParentSpanId"] == (f"{span.parent.span_id:016x}" if span.parent else "")
        assert dict(row["SpanAttributes"]) == {k: _text(v) for k, v in span.attributes.items()}
    roots = [r for r in by_id.values() if r["SpanName"].startswith("GET")]
    assert [e["Name"] for e in roots[0]["Events"]] == ["lookup"]

    logs = server.table("logs").scan().to_arrow().to_pylist()
    assert sorted(r["Body"] for r in logs) == sorted([f"order {i} failed" for i in range(25)] + ["all done"])
    warning = next(r for r in logs if r["Body"] == "order 3 failed")
    assert (warning["SeverityText"], warning["SeverityNumber"]) == ("WARN", 13)
    assert dict(warning["LogAttributes"])["order.id"] == "3"
    assert warning["ServiceName"] == "shop-api"

    def rows(table: str) -> list[dict]:
        return server.table(table).scan().to_arrow().to_pylist()

    sums = {r["MetricName"]: r for r in rows("metrics_sum")}
    assert (sums["requests"]["Value"], sums["requests"]["IntValue"], sums["requests"]["IsMonotonic"]) == (7, 7, True)
    assert dict(sums["requests"]["Attributes"]) == {"route": "/a"}
    assert (sums["queue.depth"]["Value"], sums["queue.depth"]["IsMonotonic"]) == (-3, False)
    assert sums["requests"]["AggregationTemporality"] == 2
    (hist,) = rows("metrics_histogram")
    assert (hist["MetricName"], hist["Count"], hist["Sum"], hist["Min"], hist["Max"]) == ("latency", 3, 170, 5, 150)
    assert sum(hist["BucketCounts"]) == 3 and hist["ExplicitBounds"][:3] == [0.0, 5.0, 10.0]
    (exp,) = rows("metrics_exponential_histogram")
    assert (exp["MetricName"], exp["Count"], exp["Sum"]) == ("payload.size", 4, 1500)
    assert sum(exp["PositiveBucketCounts"]) == 4
    (gauge,) = rows("metrics_gauge")
    assert (gauge["MetricName"], gauge["Value"], gauge["IntValue"]) == ("temperature", 21.5, None)
    (summary,) = rows("metrics_summary")
    assert summary["ValueAtQuantiles"] == [{"Quantile": 0.5, "Value": 4.0}]

    con = connect()
    location = server.table("traces").metadata_location
    assert con.sql(f"SELECT count(*), count(DISTINCT TraceId) FROM iceberg_scan('{location}')").fetchone() == (80, 40)
    joined = con.sql(f"""
        SELECT count(*) FROM iceberg_scan('{location}') t
        WHERE t.SpanName LIKE 'GET%' AND t.SpanAttributes['cache.hit'] = 'true'""").fetchone()
    assert joined == (20,)
