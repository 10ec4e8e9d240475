"""Golden tests for the `traces` table: hand-written requests, expected rows written out literally."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp2parquet.convert import convert_traces
from otlp2parquet.schemas import arrow_schema
from tests.otlp import kv, ns, ts

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
ROOT = bytes.fromhex("eee19b7ec3c1b174")
CHILD = bytes.fromhex("eee19b7ec3c1b173")


def _request() -> ExportTraceServiceRequest:
    """Two resources; the first with two scopes; events, links, status, flags and dropped counts."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add(
        resource=Resource(attributes=[kv("service.name", "checkout"), kv("host.name", "node-1")],
                          dropped_attributes_count=2),
        schema_url="https://opentelemetry.io/schemas/1.26.0")
    http = rs.scope_spans.add(scope=InstrumentationScope(name="io.opentelemetry.http", version="2.1.0",
                                                         attributes=[kv("lib", "otel")]),
                              schema_url="https://scope/1")
    http.spans.add(
        trace_id=TRACE, span_id=ROOT, name="GET /api/cart", kind=trace_pb2.Span.SPAN_KIND_SERVER,
        trace_state="rojo=00f067aa0ba902b7", flags=0x301,
        start_time_unix_nano=ns("2026-01-01T00:00:01.000001") + 999,  # sub-µs part truncated in Timestamp
        end_time_unix_nano=ns("2026-01-01T00:00:01.250001") + 999,
        attributes=[kv("http.route", "/api/cart"), kv("http.response.status_code", 200), kv("retry", True)],
        dropped_attributes_count=1, dropped_events_count=3, dropped_links_count=4,
        status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="upstream timeout"),
        events=[trace_pb2.Span.Event(time_unix_nano=ns("2026-01-01T00:00:01.1"), name="exception",
                                     attributes=[kv("exception.type", "TimeoutError")],
                                     dropped_attributes_count=5)],
        links=[trace_pb2.Span.Link(trace_id=TRACE, span_id=CHILD, trace_state="k=v", flags=1,
                                   attributes=[kv("link.kind", "follows_from")], dropped_attributes_count=6)],
    )
    app = rs.scope_spans.add(scope=InstrumentationScope(name="app"))
    app.spans.add(trace_id=TRACE, span_id=CHILD, parent_span_id=ROOT, name="load cart",
                  kind=trace_pb2.Span.SPAN_KIND_INTERNAL,
                  start_time_unix_nano=ns("2026-01-01T00:00:01.01"), end_time_unix_nano=ns("2026-01-01T00:00:01.02"))
    other = req.resource_spans.add(resource=Resource(attributes=[kv("service.name", "cart")]))
    other.scope_spans.add().spans.add(trace_id=TRACE, span_id=bytes(range(1, 9)), name="db", kind=3,
                                      start_time_unix_nano=ns("2026-01-01T00:00:02"),
                                      end_time_unix_nano=ns("2026-01-01T00:00:02") + 1)
    return req


EXPECTED = {
    "Timestamp": [ts("2026-01-01T00:00:01.000001"), ts("2026-01-01T00:00:01.010"), ts("2026-01-01T00:00:02")],
    "TraceId": ["5b8efff798038103d269b633813fc60c"] * 3,
    "SpanId": ["eee19b7ec3c1b174", "eee19b7ec3c1b173", "0102030405060708"],
    "ParentSpanId": ["", "eee19b7ec3c1b174", ""],
    "TraceState": ["rojo=00f067aa0ba902b7", "", ""],
    "SpanName": ["GET /api/cart", "load cart", "db"],
    "SpanKind": ["Server", "Internal", "Client"],
    "ServiceName": ["checkout", "checkout", "cart"],
    "ResourceAttributes": [[("service.name", "checkout"), ("host.name", "node-1")]] * 2 + [[("service.name", "cart")]],
    "ResourceSchemaUrl": ["https://opentelemetry.io/schemas/1.26.0"] * 2 + [""],
    "ResourceDroppedAttributesCount": [2, 2, 0],
    "ScopeName": ["io.opentelemetry.http", "app", ""],
    "ScopeVersion": ["2.1.0", "", ""],
    "ScopeAttributes": [[("lib", "otel")], [], []],
    "ScopeDroppedAttributesCount": [0, 0, 0],
    "ScopeSchemaUrl": ["https://scope/1", "", ""],
    "ResourceEntityRefs": [[], [], []],
    "SpanAttributes": [[("http.route", "/api/cart"), ("http.response.status_code", "200"), ("retry", "true")], [], []],
    "Duration": [250_000_000, 10_000_000, 1],
    "StatusCode": ["Error", "Unset", "Unset"],
    "StatusMessage": ["upstream timeout", "", ""],
    "Events": [[{"Timestamp": ts("2026-01-01T00:00:01.1"), "Name": "exception",
                 "Attributes": [("exception.type", "TimeoutError")], "DroppedAttributesCount": 5}], [], []],
    "Links": [[{"TraceId": "5b8efff798038103d269b633813fc60c", "SpanId": "eee19b7ec3c1b173", "TraceState": "k=v",
                "Attributes": [("link.kind", "follows_from")], "Flags": 1, "DroppedAttributesCount": 6}], [], []],
    "EndTimestamp": [ts("2026-01-01T00:00:01.250001"), ts("2026-01-01T00:00:01.020"), ts("2026-01-01T00:00:02")],
    "Flags": [0x301, 0, 0],
    "DroppedAttributesCount": [1, 0, 0],
    "DroppedEventsCount": [3, 0, 0],
    "DroppedLinksCount": [4, 0, 0],
}


def test_golden_rows_column_by_column() -> None:
    result = convert_traces(_request().SerializeToString())
    batch = result.batches["traces"]
    assert (result.accepted, result.rejected) == (3, 0)
    assert batch.schema == arrow_schema("traces")
    assert list(EXPECTED) == batch.schema.names, "the golden rows must cover every column"
    for name, expected in EXPECTED.items():
        assert batch.column(name).to_pylist() == expected, name


def test_span_with_wrong_id_length_is_rejected_alone() -> None:
    req = _request()
    req.resource_spans[0].scope_spans[1].spans.add(trace_id=TRACE[:12], span_id=ROOT, name="bad")
    bad_link = req.resource_spans[1].scope_spans[0].spans.add(trace_id=TRACE, span_id=ROOT, name="bad link")
    bad_link.links.add(trace_id=TRACE, span_id=b"\x01" * 12)
    result = convert_traces(req.SerializeToString())
    assert (result.accepted, result.rejected) == (3, 2)
    assert result.batches["traces"].column("SpanName").to_pylist() == ["GET /api/cart", "load cart", "db"]
    assert result.reasons == {"spans with trace_id must be 0 or 16 bytes": 1,
                              "spans with link span_id must be 0 or 8 bytes": 1}
    assert "1 rejected: spans with trace_id must be 0 or 16 bytes" in result.message()


def test_all_zero_ids_read_as_empty_so_joins_stay_consistent() -> None:
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add().spans.add(trace_id=bytes(16), span_id=ROOT, parent_span_id=bytes(8))
    batch = convert_traces(req.SerializeToString()).batches["traces"]
    assert batch.column("TraceId").to_pylist() == [""]
    assert batch.column("ParentSpanId").to_pylist() == [""]


def test_unknown_enum_values_are_kept_as_numbers() -> None:
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add(span_id=ROOT, kind=9)
    span.status.code = 7
    batch = convert_traces(req.SerializeToString()).batches["traces"]
    assert batch.column("SpanKind").to_pylist() == ["9"]
    assert batch.column("StatusCode").to_pylist() == ["7"]


def test_end_before_start_gives_negative_duration() -> None:
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    spans.add(span_id=ROOT, start_time_unix_nano=2000, end_time_unix_nano=500)
    assert convert_traces(req.SerializeToString()).batches["traces"].column("Duration").to_pylist() == [-1500]


def test_empty_request_and_empty_envelopes_give_no_table() -> None:
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add()
    for payload in (b"", req.SerializeToString()):
        result = convert_traces(payload)
        assert (result.batches, result.accepted, result.rejected) == ({}, 0, 0)
