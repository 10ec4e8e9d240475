"""The native fast path's buffers -> the same record batch the reference converter builds.

`_fastpb` (C) walks a well-formed logs or traces request with the GIL released and returns plain buffers; this
module wraps them as Arrow arrays without copying. Where the C code gives up (None), the caller converts with ptars, so
every answer for unusual input is the reference path's.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp2parquet.convert import _fastpb
from otlp2parquet.convert._arrays import MAP_TYPE, TIMESTAMP_TYPE, enum_names
from otlp2parquet.convert._common import _ENTITY_REFS_TYPE, ConversionResult, Levels
from otlp2parquet.convert._values import _doubles_text
from otlp2parquet.schemas import arrow_schema

LOGS = arrow_schema("logs")
TRACES = arrow_schema("traces")
EVENTS_TYPE = TRACES.field("Events").type
LINKS_TYPE = TRACES.field("Links").type
SPAN_KINDS = ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"]
STATUS_CODES = ["Unset", "Ok", "Error"]
_enabled = True


def enable(on: bool) -> None:
    """Switch the native path on or off for this process (`server.native_decode`; off: ptars for everything)."""
    global _enabled
    _enabled = on


def enabled() -> bool:
    return _enabled


def _fixed(raw: dict, name: str, n: int, type_: pa.DataType) -> pa.Array:
    return pa.Array.from_buffers(type_, n, [None, pa.py_buffer(raw[name])])


def _strings(raw: dict, name: str, n: int) -> pa.Array:
    return pa.StringArray.from_buffers(n, pa.py_buffer(raw[f"{name}.offsets"]), pa.py_buffer(raw[f"{name}.data"]))


def _values(raw: dict, name: str, n: int) -> pa.Array:
    """Attribute or body text; the rows holding doubles get Go's formatting, as in `stringify`."""
    text = _strings(raw, name, n)
    rows = np.frombuffer(raw[f"{name}.double_rows"], dtype=np.int64)
    if not len(rows):
        return text
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    doubles = pa.array(np.frombuffer(raw[f"{name}.double_values"], dtype=np.float64))
    return pc.replace_with_mask(text, pa.array(mask), _doubles_text(doubles))


def _map(raw: dict, name: str, n: int) -> pa.MapArray:
    offsets = np.frombuffer(raw[f"{name}.offsets"], dtype=np.int32)
    entries = int(offsets[-1])
    return pa.MapArray.from_arrays(pa.array(offsets), _strings(raw, f"{name}.keys", entries),
                                   _values(raw, f"{name}.values", entries), type=MAP_TYPE)


def _service_names(raw: dict, attributes: pa.MapArray) -> pa.Array:
    """Per resource, the value of its last service.name attribute ('' without one)."""
    index = np.frombuffer(raw["service_entry"], dtype=np.int64)
    return pc.fill_null(attributes.items.take(pa.array(index, mask=index < 0)), "")


def _list(raw: dict, name: str, n: int, list_type: pa.ListType, fields: dict[str, pa.Array]) -> pa.ListArray:
    """Span events or links: one list per span around the struct items, in the contract's field order."""
    element = list_type.value_type
    items = pa.StructArray.from_arrays([fields[f.name] for f in element], fields=list(element))
    return pa.ListArray.from_arrays(_fixed(raw, f"{name}.offsets", n + 1, pa.int32()), items, type=list_type)


def _levels(raw: dict) -> dict[str, pa.Array]:
    """The resource and scope columns, repeated for each item."""
    resources, scopes, items = raw["resources"], raw["scopes"], raw["items"]
    resource_attributes = _map(raw, "ResourceAttributes", resources)
    levels = Levels(
        per_resource={
            "ResourceAttributes": resource_attributes,
            "ServiceName": _service_names(raw, resource_attributes),
            "ResourceSchemaUrl": _strings(raw, "ResourceSchemaUrl", resources),
            "ResourceDroppedAttributesCount": _fixed(raw, "ResourceDroppedAttributesCount", resources, pa.int64()),
            "ResourceEntityRefs": pa.array([[]] * resources, _ENTITY_REFS_TYPE),
        },
        per_scope={
            "ScopeName": _strings(raw, "ScopeName", scopes),
            "ScopeVersion": _strings(raw, "ScopeVersion", scopes),
            "ScopeAttributes": _map(raw, "ScopeAttributes", scopes),
            "ScopeDroppedAttributesCount": _fixed(raw, "ScopeDroppedAttributesCount", scopes, pa.int64()),
            "ScopeSchemaUrl": _strings(raw, "ScopeSchemaUrl", scopes),
        })
    return levels.repeat(_fixed(raw, "resource", items, pa.int32()), _fixed(raw, "scope", items, pa.int32()))


def _result(table: str, schema: pa.Schema, items: int, columns: dict[str, pa.Array]) -> ConversionResult:
    result = ConversionResult(accepted=items)
    result.batches[table] = pa.RecordBatch.from_arrays([columns[f.name] for f in schema], schema=schema)
    return result


def convert_logs(data: bytes) -> ConversionResult | None:
    """The `logs` batch for a plainly well-formed request, or None to leave it to the reference converter."""
    raw = _fastpb.decode_logs(data)
    if raw is None:
        return None
    records = raw["items"]
    if not records:
        return ConversionResult()
    columns = _levels(raw)
    columns.update({
        "Timestamp": _fixed(raw, "Timestamp", records, TIMESTAMP_TYPE),
        "TraceId": _strings(raw, "TraceId", records),
        "SpanId": _strings(raw, "SpanId", records),
        "TraceFlags": _fixed(raw, "TraceFlags", records, pa.int32()),
        "SeverityText": _strings(raw, "SeverityText", records),
        "SeverityNumber": _fixed(raw, "SeverityNumber", records, pa.int32()),
        "Body": _values(raw, "Body", records),
        "LogAttributes": _map(raw, "LogAttributes", records),
        "EventName": _strings(raw, "EventName", records),
        "ObservedTimestamp": _fixed(raw, "ObservedTimestamp", records, TIMESTAMP_TYPE),
        "Flags": _fixed(raw, "Flags", records, pa.int64()),
        "DroppedAttributesCount": _fixed(raw, "DroppedAttributesCount", records, pa.int64()),
    })
    return _result("logs", LOGS, records, columns)


def convert_traces(data: bytes) -> ConversionResult | None:
    """The `traces` batch for a plainly well-formed request, or None to leave it to the reference converter."""
    raw = _fastpb.decode_traces(data)
    if raw is None:
        return None
    spans, events, links = raw["items"], raw["events"], raw["links"]
    if not spans:
        return ConversionResult()
    columns = _levels(raw)
    columns.update({
        "Timestamp": _fixed(raw, "Timestamp", spans, TIMESTAMP_TYPE),
        "TraceId": _strings(raw, "TraceId", spans),
        "SpanId": _strings(raw, "SpanId", spans),
        "ParentSpanId": _strings(raw, "ParentSpanId", spans),
        "TraceState": _strings(raw, "TraceState", spans),
        "SpanName": _strings(raw, "SpanName", spans),
        "SpanKind": enum_names(_fixed(raw, "SpanKind", spans, pa.int32()), SPAN_KINDS),
        "SpanAttributes": _map(raw, "SpanAttributes", spans),
        "Duration": _fixed(raw, "Duration", spans, pa.int64()),
        "StatusCode": enum_names(_fixed(raw, "StatusCode", spans, pa.int32()), STATUS_CODES),
        "StatusMessage": _strings(raw, "StatusMessage", spans),
        "Events": _list(raw, "Events", spans, EVENTS_TYPE, {
            "Timestamp": _fixed(raw, "Events.Timestamp", events, TIMESTAMP_TYPE),
            "Name": _strings(raw, "Events.Name", events),
            "Attributes": _map(raw, "Events.Attributes", events),
            "DroppedAttributesCount": _fixed(raw, "Events.DroppedAttributesCount", events, pa.int64()),
        }),
        "Links": _list(raw, "Links", spans, LINKS_TYPE, {
            "TraceId": _strings(raw, "Links.TraceId", links),
            "SpanId": _strings(raw, "Links.SpanId", links),
            "TraceState": _strings(raw, "Links.TraceState", links),
            "Attributes": _map(raw, "Links.Attributes", links),
            "Flags": _fixed(raw, "Links.Flags", links, pa.int64()),
            "DroppedAttributesCount": _fixed(raw, "Links.DroppedAttributesCount", links, pa.int64()),
        }),
        "EndTimestamp": _fixed(raw, "EndTimestamp", spans, TIMESTAMP_TYPE),
        "Flags": _fixed(raw, "Flags", spans, pa.int64()),
        "DroppedAttributesCount": _fixed(raw, "DroppedAttributesCount", spans, pa.int64()),
        "DroppedEventsCount": _fixed(raw, "DroppedEventsCount", spans, pa.int64()),
        "DroppedLinksCount": _fixed(raw, "DroppedLinksCount", spans, pa.int64()),
    })
    return _result("traces", TRACES, spans, columns)
