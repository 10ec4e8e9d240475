"""Golden and edge-case tests for the `logs` table."""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from otlp2parquet.convert import convert_logs
from otlp2parquet.schemas import arrow_schema
from tests.otlp import any_value, kv, ns, ts

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN = bytes.fromhex("eee19b7ec3c1b174")


def _request() -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add(resource=Resource(attributes=[kv("service.name", "payment")]),
                               schema_url="https://opentelemetry.io/schemas/1.26.0")
    sl = rl.scope_logs.add(scope=InstrumentationScope(name="app.logger", version="1.0",
                                                      attributes=[kv("team", "pay")], dropped_attributes_count=1),
                           schema_url="https://scope")
    sl.log_records.add(
        time_unix_nano=ns("2026-01-01T00:00:01"), observed_time_unix_nano=ns("2026-01-01T00:00:02"),
        severity_number=logs_pb2.SEVERITY_NUMBER_ERROR, severity_text="ERROR", body=any_value("payment failed"),
        attributes=[kv("code.function", "pay"), kv("amount", 12.5)], dropped_attributes_count=3,
        flags=0x1FF, trace_id=TRACE, span_id=SPAN, event_name="payment.failed")
    # No time_unix_nano: the log data model says use the observed time.
    sl.log_records.add(observed_time_unix_nano=ns("2026-01-01T00:00:03"), body=any_value({"b": [1, 2.5], "a": True}))
    req.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=ns("2026-01-01T00:00:04"),
                                                             body=any_value(b"\x00\xff"))
    return req


EXPECTED = {
    "Timestamp": [ts("2026-01-01T00:00:01"), ts("2026-01-01T00:00:03"), ts("2026-01-01T00:00:04")],
    "TraceId": ["5b8efff798038103d269b633813fc60c", "", ""],
    "SpanId": ["eee19b7ec3c1b174", "", ""],
    "TraceFlags": [0xFF, 0, 0],
    "SeverityText": ["ERROR", "", ""],
    "SeverityNumber": [17, 0, 0],
    "ServiceName": ["payment", "payment", ""],
    "Body": ["payment failed", '{"a":true,"b":[1,2.5]}', "AP8="],
    "ResourceAttributes": [[("service.name", "payment")]] * 2 + [[]],
    "ResourceSchemaUrl": ["https://opentelemetry.io/schemas/1.26.0"] * 2 + [""],
    "ResourceDroppedAttributesCount": [0, 0, 0],
    "ScopeName": ["app.logger", "app.logger", ""],
    "ScopeVersion": ["1.0", "1.0", ""],
    "ScopeAttributes": [[("team", "pay")], [("team", "pay")], []],
    "ScopeDroppedAttributesCount": [1, 1, 0],
    "ScopeSchemaUrl": ["https://scope", "https://scope", ""],
    "ResourceEntityRefs": [[], [], []],
    "LogAttributes": [[("code.function", "pay"), ("amount", "12.5")], [], []],
    "EventName": ["payment.failed", "", ""],
    "ObservedTimestamp": [ts("2026-01-01T00:00:02"), ts("2026-01-01T00:00:03"), ts("1970-01-01T00:00:00")],
    "Flags": [0x1FF, 0, 0],
    "DroppedAttributesCount": [3, 0, 0],
}


def test_golden_rows_column_by_column() -> None:
    result = convert_logs(_request().SerializeToString())
    batch = result.batches["logs"]
    assert (result.accepted, result.rejected) == (3, 0)
    assert batch.schema == arrow_schema("logs")
    assert list(EXPECTED) == batch.schema.names
    for name, expected in EXPECTED.items():
        assert batch.column(name).to_pylist() == expected, name


def test_log_with_bad_span_id_is_rejected_and_counted() -> None:
    req = _request()
    req.resource_logs[1].scope_logs[0].log_records.add(span_id=b"\x01\x02\x03")
    result = convert_logs(req.SerializeToString())
    assert (result.accepted, result.rejected) == (3, 1)
    assert result.reasons == {"log records with span_id must be 0 or 8 bytes": 1}


def test_timestamps_far_in_the_future_are_kept() -> None:
    req = ExportLogsServiceRequest()
    req.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=2**64 - 1)
    batch = convert_logs(req.SerializeToString()).batches["logs"]
    assert batch.column("Timestamp").cast("int64").to_pylist() == [(2**64 - 1) // 1000]


def test_resource_without_service_name_and_scope_unset() -> None:
    req = ExportLogsServiceRequest()
    req.resource_logs.add().scope_logs.add().log_records.add(body=any_value("x"))
    batch = convert_logs(req.SerializeToString()).batches["logs"]
    row = batch.to_pylist()[0]
    assert (row["ServiceName"], row["ScopeName"], row["ResourceAttributes"], row["Body"]) == ("", "", [], "x")
