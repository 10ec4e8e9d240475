"""The native fast path's buffers -> the same record batch the reference converter builds.

`_fastpb` (C) walks a well-formed logs request with the GIL released and returns plain buffers; this module
wraps them as Arrow arrays without copying. Where the C code gives up (None), the caller converts with ptars, so
every answer for unusual input is the reference path's.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp2parquet.convert import _fastpb
from otlp2parquet.convert._arrays import MAP_TYPE, TIMESTAMP_TYPE
from otlp2parquet.convert._common import _ENTITY_REFS_TYPE, ConversionResult, Levels
from otlp2parquet.convert._values import _doubles_text
from otlp2parquet.schemas import arrow_schema

LOGS = arrow_schema("logs")
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


def convert_logs(data: bytes) -> ConversionResult | None:
    """The `logs` batch for a plainly well-formed request, or None to leave it to the reference converter."""
    raw = _fastpb.decode_logs(data)
    if raw is None:
        return None
    records, resources, scopes = raw["records"], raw["resources"], raw["scopes"]
    result = ConversionResult(accepted=records)
    if not records:
        return result
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
    columns = levels.repeat(_fixed(raw, "resource", records, pa.int32()), _fixed(raw, "scope", records, pa.int32()))
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
    result.batches["logs"] = pa.RecordBatch.from_arrays([columns[f.name] for f in LOGS], schema=LOGS)
    return result
