"""Raw request bytes -> one Arrow row holding the whole request, decoded natively by ptars.

ptars (Rust) decodes the protobuf straight into Arrow columns, so the request is parsed once and nothing walks
it in Python. It refuses a request with an invalid UTF-8 string, as proto3 requires, but the Collector (gogo
protobuf) forwards such strings; we repair them to U+FFFD rather than lose the whole request.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import pyarrow as pa
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from ptars import HandlerPool, PtarsConfig

from otlp2parquet.errors import ConversionError

REQUESTS: dict[str, Descriptor] = {
    "traces": trace_service_pb2.ExportTraceServiceRequest.DESCRIPTOR,
    "logs": logs_service_pb2.ExportLogsServiceRequest.DESCRIPTOR,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest.DESCRIPTOR,
}
_MAX_DEPTH = 64


@cache
def _handler(signal: str):
    descriptor = REQUESTS[signal]
    return HandlerPool([descriptor.file], config=PtarsConfig(timestamp_tz="UTC")).get_for_message(descriptor)


def decode(signal: str, data: bytes) -> tuple[pa.StructArray, int]:
    """Decode one Export request. Returns the request as a one-row struct and the count of repaired strings."""
    try:
        return _handler(signal).list_to_record_batch([data]).to_struct_array(), 0
    except ValueError as exc:
        if "UTF-8" not in str(exc):
            raise ConversionError(f"cannot decode {signal} request: {exc}") from exc
    repaired, count = repair_utf8(data, REQUESTS[signal])
    try:
        return _handler(signal).list_to_record_batch([repaired]).to_struct_array(), count
    except ValueError as exc:
        raise ConversionError(f"cannot decode {signal} request: {exc}") from exc


def join(requests: Sequence[bytes]) -> bytes | None:
    """Several requests of one signal as one. Appended protobuf messages read as one message whose repeated
    fields hold both, so converting the joined bytes once gives every request's rows.

    None if a request does not end exactly after its last top-level field: its truncated field would swallow
    the next request's bytes, and two requests that are refused alone could read as one valid one.
    """
    return b"".join(requests) if all(_framed(r) for r in requests) else None


def _framed(data: bytes) -> bool:
    pos = 0
    try:
        while pos < len(data):
            number, _, _, _, pos = _field(data, pos)
            if number == 0:
                return False
    except ConversionError:
        return False
    return True


def _field(data: bytes, pos: int) -> tuple[int, int, int, int, int]:
    """The field starting at `pos`: its number, wire type, the end of its tag, the start of its value and its
    end. Raises ConversionError for a group (wire types 3 and 4) or a field running past the end of `data`."""
    tag, tag_end = _varint(data, pos)
    number, wire = tag >> 3, tag & 7
    body = tag_end
    if wire == 0:
        _, end = _varint(data, body)
    elif wire == 1:
        end = body + 8
    elif wire == 5:
        end = body + 4
    elif wire == 2:
        length, body = _varint(data, tag_end)
        end = body + length
        if end > len(data):
            raise ConversionError("truncated length-delimited field")
    else:
        raise ConversionError(f"unsupported protobuf wire type {wire}")
    if end > len(data):
        raise ConversionError("truncated field")
    return number, wire, tag_end, body, end


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ConversionError("truncated or malformed varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def repair_utf8(data: bytes, descriptor: Descriptor, depth: int = 0) -> tuple[bytes, int]:
    """Re-encode `data` with every invalid UTF-8 string field replaced by its U+FFFD-repaired text."""
    if depth > _MAX_DEPTH:
        raise ConversionError("message nested too deeply")
    out = bytearray()
    repaired = pos = 0
    while pos < len(data):
        start = pos
        number, wire, tag_end, body, pos = _field(data, pos)
        if wire == 2:
            fd = descriptor.fields_by_number.get(number)
            payload = data[body:pos]
            if fd is not None and fd.type == FieldDescriptor.TYPE_MESSAGE:
                payload, n = repair_utf8(payload, fd.message_type, depth + 1)
            elif fd is not None and fd.type == FieldDescriptor.TYPE_STRING:
                try:
                    payload.decode("utf-8")
                    n = 0
                except UnicodeDecodeError:
                    payload, n = payload.decode("utf-8", errors="replace").encode("utf-8"), 1
            else:
                n = 0
            if n:
                repaired += n
                out += data[start:tag_end] + _encode_varint(len(payload)) + payload
                continue
        out += data[start:pos]
    return bytes(out), repaired
