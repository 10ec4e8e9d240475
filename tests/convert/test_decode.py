"""Undecodable bytes raise ConversionError; invalid UTF-8 is repaired rather than losing the request."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp2parquet.convert import CONVERTERS, convert_traces
from otlp2parquet.errors import ConversionError
from tests.otlp import kv


def _request_with_marker() -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", "MARKER-svc"))
    rs.scope_spans.add().spans.add(span_id=b"\x01" * 8, name="MARKER-span",
                                   attributes=[kv("MARKER-key", "MARKER-value")])
    return req.SerializeToString()


def test_invalid_utf8_strings_are_replaced_and_reported() -> None:
    # Same byte length, so the protobuf framing stays valid: "MARKER" -> b"\xffARKER" (not UTF-8).
    data = _request_with_marker().replace(b"MARKER", b"\xffARKER")
    result = convert_traces(data)
    row = result.batches["traces"].to_pylist()[0]
    assert row["ServiceName"] == "\ufffdARKER-svc"
    assert row["SpanName"] == "\ufffdARKER-span"
    assert row["SpanAttributes"] == [("\ufffdARKER-key", "\ufffdARKER-value")]
    assert (result.accepted, result.rejected) == (1, 0)
    assert result.warnings == ["4 string fields had invalid UTF-8 and were stored with U+FFFD replacements"]


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
@pytest.mark.parametrize("data", [b"\x0a\xff\xff\xff", b"\x0a\x10short", b"\xff" * 20, b"\x0f"],
                         ids=["bad-varint", "truncated", "junk", "bad-wire-type"])
def test_undecodable_bytes_raise_conversion_error(signal: str, data: bytes) -> None:
    with pytest.raises(ConversionError, match=f"cannot decode {signal} request|wire type|truncated"):
        CONVERTERS[signal](data)


def test_truncated_real_request_is_rejected() -> None:
    data = _request_with_marker()
    with pytest.raises(ConversionError):
        convert_traces(data[:-5])
