"""Every query in docs/queries.md, run through `otlp2parquet query` against data this test sent; and `tables`."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.integration.server import ServerProcess
from tests.otlp import any_value, kv, ns
from tests.tools import ROOT

pytestmark = pytest.mark.integration
TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
QUERIES = re.findall(r"```sql\n(.*?)```", (ROOT / "docs" / "queries.md").read_text(), flags=re.S)


def _traces() -> bytes:
    """checkout: 4 spans (1 error), durations 10..40 ms; cart: 2 spans (both errors)."""
    req = ExportTraceServiceRequest()
    for service, count, errors in (("checkout", 4, 1), ("cart", 2, 2)):
        spans = req.resource_spans.add(resource=Resource(attributes=[kv("service.name", service)])).scope_spans.add()
        for i in range(count):
            span = spans.spans.add(trace_id=TRACE if service == "checkout" else bytes(range(16)),
                                   span_id=bytes([len(service), i + 1, 0, 0, 0, 0, 0, 1]), name=f"{service}-op-{i}",
                                   start_time_unix_nano=ns("2026-01-01T00:00:00"),
                                   end_time_unix_nano=ns("2026-01-01T00:00:00") + (i + 1) * 10_000_000)
            if i < errors:
                span.status.code = trace_pb2.Status.STATUS_CODE_ERROR
    return req.SerializeToString()


def _logs() -> bytes:
    req = ExportLogsServiceRequest()
    records = req.resource_logs.add(resource=Resource(attributes=[kv("service.name", "checkout")])).scope_logs.add()
    for second, (text, span) in enumerate([("cart loaded", 1), ("payment failed", 2), ("unrelated", None)]):
        record = records.log_records.add(time_unix_nano=ns(f"2026-01-01T00:00:0{second}"), severity_text="INFO",
                                         body=any_value(text))
        if span is not None:
            record.trace_id, record.span_id = TRACE, bytes([8, span, 0, 0, 0, 0, 0, 1])
    return req.SerializeToString()


def _metrics() -> bytes:
    req = ExportMetricsServiceRequest()
    scope = req.resource_metrics.add(resource=Resource(attributes=[kv("service.name", "checkout")])).scope_metrics.add()
    hist = scope.metrics.add(name="http.server.request.duration", unit="s")
    hist.histogram.aggregation_temporality = 2
    for counts in ([5, 3, 2, 0], [5, 3, 2, 0]):  # 20 requests: 10 <= 0.1, 6 <= 0.5, 4 <= 1, none above
        hist.histogram.data_points.add(time_unix_nano=ns("2026-01-01T00:01:00"), count=sum(counts),
                                       bucket_counts=counts, explicit_bounds=[0.1, 0.5, 1.0])
    total = scope.metrics.add(name="http.server.requests")
    total.sum.aggregation_temporality, total.sum.is_monotonic = 2, True
    for minute, value in enumerate([100, 160, 280]):
        total.sum.data_points.add(time_unix_nano=ns(f"2026-01-01T00:0{minute}:00"), as_int=value)
    return req.SerializeToString()


def _query(server: ServerProcess, sql: str) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "otlp2parquet", "query", "--base-path", str(server.base), sql,
                           "--format", "json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    server = ServerProcess(tmp_path_factory.mktemp("queries"))
    for method, payload in (("trace.v1.TraceService", _traces()), ("logs.v1.LogsService", _logs()),
                            ("metrics.v1.MetricsService", _metrics())):
        server.channel.unary_unary(f"/opentelemetry.proto.collector.{method}/Export")(payload, timeout=10)
    assert server.stop() == 0, server.log()
    return server


def test_docs_have_the_queries_this_test_checks() -> None:
    assert len(QUERIES) == 5


def test_slowest_spans_per_service(loaded: ServerProcess) -> None:
    rows = _query(loaded, QUERIES[0])
    assert [(r["ServiceName"], r["SpanName"], r["duration_ms"]) for r in rows] == [
        ("cart", "cart-op-1", 20.0), ("cart", "cart-op-0", 10.0),
        ("checkout", "checkout-op-3", 40.0), ("checkout", "checkout-op-2", 30.0), ("checkout", "checkout-op-1", 20.0)]


def test_error_rate_by_service(loaded: ServerProcess) -> None:
    rows = _query(loaded, QUERIES[1])
    assert [(r["ServiceName"], r["spans"], r["errors"], r["error_pct"]) for r in rows] == [
        ("cart", 2, 2, 100.0), ("checkout", 4, 1, 25.0)]


def test_logs_of_a_trace_with_their_spans(loaded: ServerProcess) -> None:
    rows = _query(loaded, QUERIES[2])
    assert [(r["Body"], r["SpanName"]) for r in rows] == [("cart loaded", "checkout-op-0"),
                                                          ("payment failed", "checkout-op-1")]


def test_histogram_percentiles(loaded: ServerProcess) -> None:
    (row,) = _query(loaded, QUERIES[3])
    assert (row["p50"], row["p95"], row["p99"]) == (0.1, 1.0, 1.0)  # 10 of 20 <= 0.1, 20 of 20 <= 1.0


def test_counter_rate_per_minute(loaded: ServerProcess) -> None:
    rows = _query(loaded, QUERIES[4])
    assert [r["per_minute"] for r in rows] == [60.0, 120.0]


def test_tables_command_lists_what_was_written(loaded: ServerProcess) -> None:
    done = subprocess.run([sys.executable, "-m", "otlp2parquet", "tables", "--base-path", str(loaded.base)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line.split() for line in done.stdout.splitlines()[2:-1]}
    assert lines["traces"][1] == "6" and lines["logs"][1] == "3" and lines["metrics_histogram"][1] == "2"
    assert done.stdout.rstrip().endswith("(4 rows)"), "tables that were never written to do not exist yet"


def test_query_formats(loaded: ServerProcess) -> None:
    sql = "SELECT ServiceName, count(*) AS n FROM traces GROUP BY 1 ORDER BY 1"
    table = subprocess.run([sys.executable, "-m", "otlp2parquet", "query", "--base-path", str(loaded.base), sql],
                           capture_output=True, text=True, timeout=120).stdout
    assert table.splitlines() == ["ServiceName  n", "-----------  -", "cart         2", "checkout     4", "(2 rows)"]
    csv = subprocess.run([sys.executable, "-m", "otlp2parquet", "query", "--base-path", str(loaded.base), sql,
                          "--format", "csv"], capture_output=True, text=True, timeout=120).stdout
    assert csv.splitlines() == ["ServiceName,n", "cart,2", "checkout,4"]
