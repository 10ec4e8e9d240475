"""ExportTraceServiceRequest bytes -> the `traces` table."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from otlp2parquet.convert import _fast
from otlp2parquet.convert._arrays import (
    attributes,
    enum_names,
    explode,
    hex_ids,
    relist,
    timestamps,
    to_int64,
)
from otlp2parquet.convert._arrays import field as member
from otlp2parquet.convert._common import (
    EVENTS_TYPE,
    LINKS_TYPE,
    SPAN_KINDS,
    STATUS_CODES,
    TRACES,
    ConversionResult,
    DecodedMemory,
    build_batch,
    resource_scope_columns,
    unnest,
)
from otlp2parquet.convert._decode import decode
from otlp2parquet.convert._validate import Validation

SCHEMA = TRACES


def _events(spans: pa.Array) -> pa.Array:
    lists = member(spans, "events")
    events = lists.flatten()
    items = pa.StructArray.from_arrays(
        [timestamps(member(events, "time_unix_nano")), member(events, "name"),
         attributes(member(events, "attributes")), to_int64(member(events, "dropped_attributes_count"))],
        fields=list(EVENTS_TYPE.value_type))
    return relist(lists, items, EVENTS_TYPE)


def _links(spans: pa.Array) -> pa.Array:
    lists = member(spans, "links")
    links = lists.flatten()
    items = pa.StructArray.from_arrays(
        [hex_ids(member(links, "trace_id"), 16), hex_ids(member(links, "span_id"), 8),
         member(links, "trace_state"), attributes(member(links, "attributes")),
         to_int64(member(links, "flags")), to_int64(member(links, "dropped_attributes_count"))],
        fields=list(LINKS_TYPE.value_type))
    return relist(lists, items, LINKS_TYPE)


def convert_traces(data: bytes, limit: int | None = None) -> ConversionResult:
    fast = _fast.convert_traces(data, limit)  # the GIL released; None when off or for what it leaves to the code below
    if fast is not None:
        return fast
    request, repaired = decode("traces", data)
    nesting = unnest(request, "resource_spans", "scope_spans", "spans")
    check = Validation(len(nesting.items), "span")
    spans = nesting.items
    check.id_length(member(spans, "trace_id"), 16, "trace_id must be 0 or 16 bytes")
    check.id_length(member(spans, "span_id"), 8, "span_id must be 0 or 8 bytes")
    check.id_length(member(spans, "parent_span_id"), 8, "parent_span_id must be 0 or 8 bytes")
    links, link_span = explode(member(spans, "links"))
    check.id_length(member(links, "trace_id"), 16, "link trace_id must be 0 or 16 bytes", link_span)
    check.id_length(member(links, "span_id"), 8, "link span_id must be 0 or 8 bytes", link_span)
    nesting = check.keep_valid(nesting)
    spans = nesting.items

    start, end = member(spans, "start_time_unix_nano"), member(spans, "end_time_unix_nano")
    status = member(spans, "status")
    columns = resource_scope_columns(nesting, "ScopeDroppedAttributesCount")
    columns.update({
        "Timestamp": timestamps(start),
        "TraceId": hex_ids(member(spans, "trace_id"), 16),
        "SpanId": hex_ids(member(spans, "span_id"), 8),
        "ParentSpanId": hex_ids(member(spans, "parent_span_id"), 8),
        "TraceState": member(spans, "trace_state"),
        "SpanName": member(spans, "name"),
        "SpanKind": enum_names(member(spans, "kind"), SPAN_KINDS),
        "SpanAttributes": attributes(member(spans, "attributes")),
        "Duration": pc.subtract(end, start).cast(pa.int64(), safe=False),
        "StatusCode": enum_names(pc.fill_null(member(status, "code"), 0), STATUS_CODES),
        "StatusMessage": pc.fill_null(member(status, "message"), ""),
        "Events": _events(spans),
        "Links": _links(spans),
        "EndTimestamp": timestamps(end),
        "Flags": to_int64(member(spans, "flags")),
        "DroppedAttributesCount": to_int64(member(spans, "dropped_attributes_count")),
        "DroppedEventsCount": to_int64(member(spans, "dropped_events_count")),
        "DroppedLinksCount": to_int64(member(spans, "dropped_links_count")),
    })
    result = check.result(repaired)
    if len(spans):
        result.batches["traces"] = build_batch(SCHEMA, columns, DecodedMemory(request))
    return result
