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
