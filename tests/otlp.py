"""Small builders for hand-written OTLP messages in tests."""

from __future__ import annotations

from datetime import UTC, datetime

from opentelemetry.proto.common.v1 import common_pb2


def kv(key: str, value: object) -> common_pb2.KeyValue:
    """A KeyValue; Python type picks the AnyValue kind (bytes, bool, int, float, str, list, dict, None)."""
    return common_pb2.KeyValue(key=key, value=any_value(value))


def any_value(value: object) -> common_pb2.AnyValue:
    if value is None:
        return common_pb2.AnyValue()
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, bytes):
        return common_pb2.AnyValue(bytes_value=value)
    if isinstance(value, list):
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=[kv(k, v) for k, v in value.items()]))
    return common_pb2.AnyValue(string_value=str(value))


def ts(text: str) -> datetime:
    """'2026-01-01T00:00:01.5' -> an aware UTC datetime, as pyarrow returns timestamptz values."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def ns(text: str) -> int:
    """'2026-01-01T00:00:01.5' -> Unix nanoseconds."""
    dt = ts(text)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def swollen(signal: str, items: int, level_bytes: int, on_metric: bool = False) -> bytes:
    """A small request whose rows are huge: `items` minimal items under one resource (or, `on_metric`, one
    metric) with about `level_bytes` of attributes, which every row repeats."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    heavy = [kv(f"k{i}", "v" * 1000) for i in range(max(1, level_bytes // 1000))]
    resource = {"resource": {"attributes": [kv("service.name", "swollen")] + ([] if on_metric else heavy)}}
    if signal == "logs":
        return ExportLogsServiceRequest(resource_logs=[{
            **resource, "scope_logs": [{"log_records": [{}] * items}]}]).SerializeToString()
    if signal == "traces":
        span = {"trace_id": bytes(range(1, 17)), "span_id": bytes(range(1, 9)), "name": "s"}
        return ExportTraceServiceRequest(resource_spans=[{
            **resource, "scope_spans": [{"spans": [span] * items}]}]).SerializeToString()
    metric = {"name": "m", "gauge": {"data_points": [{"as_int": 1}] * items}, "metadata": heavy if on_metric else []}
    return ExportMetricsServiceRequest(resource_metrics=[{
        **resource, "scope_metrics": [{"metrics": [metric]}]}]).SerializeToString()
