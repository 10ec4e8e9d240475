"""The native fast path's buffers -> the same record batch the reference converter builds.

`_fastpb` (C) walks a well-formed logs, traces or metrics request with the GIL released and returns plain
buffers; this module wraps them as Arrow arrays without copying. Where the C code gives up (None), the caller
converts with ptars, so every answer for unusual input is the reference path's. With a `limit`, the walk stops
once the rows it is building would pass it (RequestTooLargeError), before Python repeats any resource's columns.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp2parquet.convert import _fastpb
from otlp2parquet.convert._arrays import MAP_TYPE, TIMESTAMP_TYPE, enum_names
from otlp2parquet.convert._common import (
    _ENTITY_REFS_TYPE,
    DOUBLE_LIST,
    EVENTS_TYPE,
    EXEMPLARS_TYPE,
    LINKS_TYPE,
    LONG_LIST,
    METRIC_TYPES,
    METRICS,
    QUANTILES_TYPE,
    SPAN_KINDS,
    STATUS_CODES,
    TRACES,
    ConversionResult,
    Levels,
    take_all,
)
from otlp2parquet.convert._values import _doubles_text
from otlp2parquet.errors import RequestTooLargeError
from otlp2parquet.schemas import arrow_schema

LOGS = arrow_schema("logs")
_enabled = True


def enable(on: bool) -> None:
    """Switch the native path on or off for this process (`server.native_decode`; off: ptars for everything)."""
    global _enabled
    _enabled = on


def _walk(decode: Callable[[bytes, int | None], dict | None], data: bytes, limit: int | None) -> dict | None:
    """The C walk's buffers, or None when the native path is off or leaves the request to ptars."""
    if not _enabled:
        return None
    try:
        return decode(data, limit)
    except _fastpb.TooLarge as exc:
        assert limit is not None
        raise RequestTooLargeError.over_budget(exc.args[0], limit, counting=True) from None


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


def _level_columns(raw: dict, scope_dropped_name: str = "ScopeDroppedAttributesCount") -> Levels:
    """The resource and scope columns, one row per resource and per scope."""
    resources, scopes = raw["resources"], raw["scopes"]
    resource_attributes = _map(raw, "ResourceAttributes", resources)
    return Levels(
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
            scope_dropped_name: _fixed(raw, "ScopeDroppedAttributesCount", scopes, pa.int64()),
            "ScopeSchemaUrl": _strings(raw, "ScopeSchemaUrl", scopes),
        })


def _levels(raw: dict) -> dict[str, pa.Array]:
    """The resource and scope columns, repeated for each item."""
    items = raw["items"]
    return _level_columns(raw).repeat(_fixed(raw, "resource", items, pa.int32()),
                                      _fixed(raw, "scope", items, pa.int32()))


def _nullable(raw: dict, name: str, n: int, dtype: type) -> pa.Array:
    """A column whose rows may be absent (an optional field, an unset oneof): the values and a validity byte each."""
    values = np.frombuffer(raw[name], dtype=dtype, count=n)
    valid = np.frombuffer(raw[f"{name}.valid"], dtype=np.bool_, count=n)
    return pa.array(values, mask=None if valid.all() else ~valid)


def _numbers(raw: dict, name: str, list_type: pa.ListType, n: int, dtype: type) -> pa.ListArray:
    """Bucket counts or explicit bounds: a list of numbers per point."""
    return pa.ListArray.from_arrays(_fixed(raw, f"{name}.offsets", n + 1, pa.int32()),
                                    pa.array(np.frombuffer(raw[name], dtype=dtype)), type=list_type)


def _batch(schema: pa.Schema, columns: dict[str, pa.Array]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([columns[f.name] for f in schema], schema=schema)


def _result(table: str, schema: pa.Schema, items: int, columns: dict[str, pa.Array]) -> ConversionResult:
    result = ConversionResult(accepted=items)
    result.batches[table] = _batch(schema, columns)
    return result


def convert_logs(data: bytes, limit: int | None = None) -> ConversionResult | None:
    """The `logs` batch for a plainly well-formed request; None when the native path is off or leaves the
    request to the reference converter."""
    raw = _walk(_fastpb.decode_logs, data, limit)
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


def convert_traces(data: bytes, limit: int | None = None) -> ConversionResult | None:
    """The `traces` batch for a plainly well-formed request, or None to leave it to the reference converter."""
    raw = _walk(_fastpb.decode_traces, data, limit)
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


def _points(raw: dict, kind: str, n: int) -> dict[str, pa.Array]:
    """The point-level columns of one metric type, as `metrics.convert_metrics` builds them."""
    p = f"{kind}."
    columns = {
        "Attributes": _map(raw, p + "Attributes", n),
        "StartTimeUnix": _fixed(raw, p + "StartTimeUnix", n, TIMESTAMP_TYPE),
        "TimeUnix": _fixed(raw, p + "TimeUnix", n, TIMESTAMP_TYPE),
        "Flags": _fixed(raw, p + "Flags", n, pa.int64()),
    }
    if kind != "summary":
        exemplars = raw[p + "exemplars"]
        columns["Exemplars"] = _list(raw, p + "Exemplars", n, EXEMPLARS_TYPE, {
            "FilteredAttributes": _map(raw, p + "Exemplars.FilteredAttributes", exemplars),
            "TimeUnix": _fixed(raw, p + "Exemplars.TimeUnix", exemplars, TIMESTAMP_TYPE),
            "Value": _fixed(raw, p + "Exemplars.Value", exemplars, pa.float64()),
            "IntValue": _nullable(raw, p + "Exemplars.IntValue", exemplars, np.int64),
            "SpanId": _strings(raw, p + "Exemplars.SpanId", exemplars),
            "TraceId": _strings(raw, p + "Exemplars.TraceId", exemplars),
        })
    if kind in ("gauge", "sum"):
        columns["Value"] = _nullable(raw, p + "Value", n, np.float64)
        columns["IntValue"] = _nullable(raw, p + "IntValue", n, np.int64)
    if kind in ("histogram", "exponential_histogram", "summary"):
        columns["Count"] = _fixed(raw, p + "Count", n, pa.int64())
        columns["Sum"] = _fixed(raw, p + "Sum", n, pa.float64()) if kind == "summary" else _nullable(
            raw, p + "Sum", n, np.float64)
    if kind in ("histogram", "exponential_histogram"):
        columns["Min"] = _nullable(raw, p + "Min", n, np.float64)
        columns["Max"] = _nullable(raw, p + "Max", n, np.float64)
    if kind == "histogram":
        columns["BucketCounts"] = _numbers(raw, p + "BucketCounts", LONG_LIST, n, np.int64)
        columns["ExplicitBounds"] = _numbers(raw, p + "ExplicitBounds", DOUBLE_LIST, n, np.float64)
    if kind == "exponential_histogram":
        columns.update({
            "Scale": _fixed(raw, p + "Scale", n, pa.int32()),
            "ZeroCount": _fixed(raw, p + "ZeroCount", n, pa.int64()),
            "ZeroThreshold": _fixed(raw, p + "ZeroThreshold", n, pa.float64()),
            "PositiveOffset": _fixed(raw, p + "PositiveOffset", n, pa.int32()),
            "PositiveBucketCounts": _numbers(raw, p + "PositiveBucketCounts", LONG_LIST, n, np.int64),
            "NegativeOffset": _fixed(raw, p + "NegativeOffset", n, pa.int32()),
            "NegativeBucketCounts": _numbers(raw, p + "NegativeBucketCounts", LONG_LIST, n, np.int64),
        })
    if kind == "summary":
        quantiles = int(np.frombuffer(raw[p + "ValueAtQuantiles.offsets"], dtype=np.int32)[-1])
        columns["ValueAtQuantiles"] = _list(raw, p + "ValueAtQuantiles", n, QUANTILES_TYPE, {
            "Quantile": _fixed(raw, p + "ValueAtQuantiles.Quantile", quantiles, pa.float64()),
            "Value": _fixed(raw, p + "ValueAtQuantiles.Value", quantiles, pa.float64()),
        })
    return columns


def convert_metrics(data: bytes, limit: int | None = None) -> ConversionResult | None:
    """The `metrics_*` batches for a plainly well-formed request, or None to leave it to the reference converter."""
    raw = _walk(_fastpb.decode_metrics, data, limit)
    if raw is None:
        return None
    result = ConversionResult()
    metrics = raw["items"]
    if not any(raw[f"{kind}.n"] for kind in METRIC_TYPES):
        return result
    levels = _level_columns(raw, "ScopeDroppedAttrCount")
    metric_resource = np.frombuffer(raw["resource"], dtype=np.int32, count=metrics)
    metric_scope = np.frombuffer(raw["scope"], dtype=np.int32, count=metrics)
    per_metric = {
        "MetricName": _strings(raw, "MetricName", metrics),
        "MetricDescription": _strings(raw, "MetricDescription", metrics),
        "MetricUnit": _strings(raw, "MetricUnit", metrics),
        "MetricMetadata": _map(raw, "MetricMetadata", metrics),
        "AggregationTemporality": _fixed(raw, "AggregationTemporality", metrics, pa.int32()),
        "IsMonotonic": pa.array(np.frombuffer(raw["IsMonotonic"], dtype=np.bool_, count=metrics)),
    }
    for kind in METRIC_TYPES:
        n = raw[f"{kind}.n"]
        if not n:
            continue
        result.accepted += n
        point_metric = np.frombuffer(raw[f"{kind}.metric"], dtype=np.int32, count=n)
        columns = levels.repeat(pa.array(metric_resource[point_metric]), pa.array(metric_scope[point_metric]))
        taken = pa.array(point_metric)
        columns.update(take_all(per_metric, taken))
        columns.update(_points(raw, kind, n))
        result.batches[f"metrics_{kind}"] = _batch(METRICS[kind], columns)
    return result
