"""ExportLogsServiceRequest bytes -> the `logs` table."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from otlp2parquet.convert import _fast
from otlp2parquet.convert._arrays import attributes, hex_ids, timestamps, to_int64
from otlp2parquet.convert._arrays import field as member
from otlp2parquet.convert._common import ConversionResult, DecodedMemory, build_batch, resource_scope_columns, unnest
from otlp2parquet.convert._decode import decode
from otlp2parquet.convert._validate import Validation
from otlp2parquet.convert._values import stringify
from otlp2parquet.schemas import arrow_schema

SCHEMA = arrow_schema("logs")


def convert_logs(data: bytes, limit: int | None = None) -> ConversionResult:
    fast = _fast.convert_logs(data, limit)  # the GIL released; None when off or for what it leaves to the code below
    if fast is not None:
        return fast
    request, repaired = decode("logs", data)
    nesting = unnest(request, "resource_logs", "scope_logs", "log_records")
    check = Validation(len(nesting.items), "log record")
    check.id_length(member(nesting.items, "trace_id"), 16, "trace_id must be 0 or 16 bytes")
    check.id_length(member(nesting.items, "span_id"), 8, "span_id must be 0 or 8 bytes")
    nesting = check.keep_valid(nesting)
    records = nesting.items

    time, observed = member(records, "time_unix_nano"), member(records, "observed_time_unix_nano")
    flags = member(records, "flags")
    columns = resource_scope_columns(nesting, "ScopeDroppedAttributesCount")
    columns.update({
        # The log data model: use Timestamp if present, otherwise ObservedTimestamp.
        "Timestamp": timestamps(pc.if_else(pc.equal(time, pa.scalar(0, pa.uint64())), observed, time)),
        "TraceId": hex_ids(member(records, "trace_id"), 16),
        "SpanId": hex_ids(member(records, "span_id"), 8),
        "TraceFlags": pc.bit_wise_and(flags, pa.scalar(0xFF, pa.uint32())).cast(pa.int32()),
        "SeverityText": member(records, "severity_text"),
        "SeverityNumber": member(records, "severity_number"),
        "Body": stringify(member(records, "body")),
        "LogAttributes": attributes(member(records, "attributes")),
        "EventName": member(records, "event_name"),
        "ObservedTimestamp": timestamps(observed),
        "Flags": to_int64(flags),
        "DroppedAttributesCount": to_int64(member(records, "dropped_attributes_count")),
    })
    result = check.result(repaired)
    if len(records):
        result.batches["logs"] = build_batch(SCHEMA, columns, DecodedMemory(request))
    return result
