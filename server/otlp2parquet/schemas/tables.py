"""The seven tables: the table contract that docs/schema.md renders.

Column names follow the ClickHouse exporter (`otel_traces`, `otel_logs`, `otel_metrics_*`). Columns ClickHouse
does not have carry every other OTLP field, so nothing the client sent is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from otlp2parquet.schemas.types import (
    ATTRIBUTES,
    BOOLEAN,
    DOUBLE,
    INT,
    LONG,
    STRING,
    TIMESTAMPTZ,
    Field,
    ListOf,
    StructOf,
)

SCHEMA_VERSION = 1
"""Bumped on any change to a column's name, type or meaning; stored as a table property."""

TRACE_ID_EX = "5b8efff798038103d269b633813fc60c"
SPAN_ID_EX = "eee19b7ec3c1b174"
RES_ATTRS_EX = "{'service.name': 'checkout', 'host.name': 'node-1'}"


def _resource_scope(scope_dropped_name: str) -> tuple[Field, ...]:
    return (
        Field("ResourceAttributes", ATTRIBUTES, source="resource.attributes", example=RES_ATTRS_EX,
              doc="Resource attributes, values stringified as the ClickHouse exporter does."),
        Field("ResourceSchemaUrl", STRING, source="Resource{Spans,Logs,Metrics}.schema_url",
              example="https://opentelemetry.io/schemas/1.26.0"),
        Field("ResourceDroppedAttributesCount", LONG, source="resource.dropped_attributes_count", example="0",
              doc="Not in ClickHouse."),
        Field("ScopeName", STRING, source="scope.name", example="io.opentelemetry.http"),
        Field("ScopeVersion", STRING, source="scope.version", example="2.1.0"),
        Field("ScopeAttributes", ATTRIBUTES, source="scope.attributes", example="{}"),
        Field(scope_dropped_name, LONG, source="scope.dropped_attributes_count", example="0"),
        Field("ScopeSchemaUrl", STRING, source="Scope{Spans,Logs,Metrics}.schema_url", example=""),
    )


_ENTITY_REF = StructOf((
    Field("SchemaUrl", STRING, source="schema_url"),
    Field("Type", STRING, source="type"),
    Field("IdKeys", ListOf(STRING), source="id_keys"),
    Field("DescriptionKeys", ListOf(STRING), source="description_keys"),
))
RESOURCE_ENTITY_REFS = Field(
    "ResourceEntityRefs", ListOf(_ENTITY_REF), source="resource.entity_refs", example="[]",
    doc="Development-status OTLP field, kept verbatim. Not in ClickHouse.")

SERVICE_NAME = Field("ServiceName", STRING, source="resource attribute service.name ('' when absent)",
                     example="checkout")

TRACES = (
    Field("Timestamp", TIMESTAMPTZ, source="start_time_unix_nano (µs precision)",
          example="2026-01-01 00:00:00.123456+00"),
    Field("TraceId", STRING, source="trace_id as lowercase hex, '' when empty", example=TRACE_ID_EX),
    Field("SpanId", STRING, source="span_id as lowercase hex", example=SPAN_ID_EX, unique=True),
    Field("ParentSpanId", STRING, source="parent_span_id as hex, '' for roots", example="", unique=True),
    Field("TraceState", STRING, source="trace_state", example="rojo=00f067aa0ba902b7"),
    Field("SpanName", STRING, source="name", example="GET /api/cart"),
    Field("SpanKind", STRING, source="kind: Unspecified, Internal, Server, Client, Producer, Consumer",
          example="Server", doc="Unknown enum values are stored as their number."),
    SERVICE_NAME,
    *_resource_scope("ScopeDroppedAttributesCount"),
    RESOURCE_ENTITY_REFS,
    Field("SpanAttributes", ATTRIBUTES, source="attributes", example="{'http.route': '/api/cart'}"),
    Field("Duration", LONG, source="end_time_unix_nano - start_time_unix_nano, nanoseconds", example="1250000",
          unique=True),
    Field("StatusCode", STRING, source="status.code: Unset, Ok, Error", example="Error"),
    Field("StatusMessage", STRING, source="status.message", example="upstream timeout"),
    Field("Events", ListOf(StructOf((
        Field("Timestamp", TIMESTAMPTZ, source="time_unix_nano"),
        Field("Name", STRING, source="name"),
        Field("Attributes", ATTRIBUTES, source="attributes"),
        Field("DroppedAttributesCount", LONG, source="dropped_attributes_count"),
    ))), source="events", example="[{Timestamp, Name: 'exception', Attributes: {...}, DroppedAttributesCount: 0}]"),
    Field("Links", ListOf(StructOf((
        Field("TraceId", STRING, source="trace_id as hex", unique=True),
        Field("SpanId", STRING, source="span_id as hex", unique=True),
        Field("TraceState", STRING, source="trace_state"),
        Field("Attributes", ATTRIBUTES, source="attributes"),
        Field("Flags", LONG, source="flags"),
        Field("DroppedAttributesCount", LONG, source="dropped_attributes_count"),
    ))), source="links", example="[]"),
    Field("EndTimestamp", TIMESTAMPTZ, source="end_time_unix_nano (µs precision)",
          example="2026-01-01 00:00:00.124706+00", doc="Not in ClickHouse (derivable there)."),
    Field("Flags", LONG, source="flags (W3C trace flags and is-remote bits)", example="257",
          doc="Not in ClickHouse."),
    Field("DroppedAttributesCount", LONG, source="dropped_attributes_count", example="0"),
    Field("DroppedEventsCount", LONG, source="dropped_events_count", example="0"),
    Field("DroppedLinksCount", LONG, source="dropped_links_count", example="0"),
)

LOGS = (
    Field("Timestamp", TIMESTAMPTZ, source="time_unix_nano, or observed_time_unix_nano when 0",
          example="2026-01-01 00:00:01+00"),
    Field("TraceId", STRING, source="trace_id as hex, '' when empty", example=TRACE_ID_EX, unique=True),
    Field("SpanId", STRING, source="span_id as hex, '' when empty", example=SPAN_ID_EX, unique=True),
    Field("TraceFlags", INT, source="flags & 0xff", example="1"),
    Field("SeverityText", STRING, source="severity_text", example="ERROR"),
    Field("SeverityNumber", INT, source="severity_number", example="17"),
    SERVICE_NAME,
    Field("Body", STRING, source="body, stringified like an attribute value", example="payment failed"),
    *_resource_scope("ScopeDroppedAttributesCount"),
    RESOURCE_ENTITY_REFS,
    Field("LogAttributes", ATTRIBUTES, source="attributes", example="{'code.function': 'pay'}"),
    Field("EventName", STRING, source="event_name", example="device.app.lifecycle"),
    Field("ObservedTimestamp", TIMESTAMPTZ, source="observed_time_unix_nano", example="2026-01-01 00:00:01+00",
          doc="Not in ClickHouse (used there only as the Timestamp fallback)."),
    Field("Flags", LONG, source="flags, all 32 bits", example="1", doc="ClickHouse keeps only the low 8 bits."),
    Field("DroppedAttributesCount", LONG, source="dropped_attributes_count", example="0"),
)

_EXEMPLARS = Field("Exemplars", ListOf(StructOf((
    Field("FilteredAttributes", ATTRIBUTES, source="filtered_attributes"),
    Field("TimeUnix", TIMESTAMPTZ, source="time_unix_nano"),
    Field("Value", DOUBLE, source="as_double, or as_int converted"),
    Field("IntValue", LONG, required=False, source="as_int; null when the exemplar was a double"),
    Field("SpanId", STRING, source="span_id as hex, '' when empty", unique=True),
    Field("TraceId", STRING, source="trace_id as hex, '' when empty", unique=True),
))), source="exemplars", example="[{FilteredAttributes: {}, TimeUnix, Value: 0.2, IntValue: null, ...}]")

_METRIC_COMMON = (
    *_resource_scope("ScopeDroppedAttrCount"),
    RESOURCE_ENTITY_REFS,
    SERVICE_NAME,
    Field("MetricName", STRING, source="metric.name", example="http.server.request.duration"),
    Field("MetricDescription", STRING, source="metric.description", example="Duration of HTTP requests"),
    Field("MetricUnit", STRING, source="metric.unit", example="s"),
    Field("MetricMetadata", ATTRIBUTES, source="metric.metadata", example="{}", doc="Not in ClickHouse."),
    Field("Attributes", ATTRIBUTES, source="data point attributes", example="{'http.route': '/'}"),
    Field("StartTimeUnix", TIMESTAMPTZ, source="start_time_unix_nano (1970-01-01 when unset)",
          example="2026-01-01 00:00:00+00"),
    Field("TimeUnix", TIMESTAMPTZ, source="time_unix_nano", example="2026-01-01 00:01:00+00"),
)

_FLAGS = Field("Flags", LONG, source="data point flags", example="0")
_TEMPORALITY = Field("AggregationTemporality", INT, source="aggregation_temporality: 0 unspecified, 1 delta, "
                     "2 cumulative", example="2")
_COUNT = Field("Count", LONG, source="count", example="42")
_MIN = Field("Min", DOUBLE, required=False, source="min; null when unset", example="0.001")
_MAX = Field("Max", DOUBLE, required=False, source="max; null when unset", example="9.5")

METRICS_GAUGE = (
    *_METRIC_COMMON,
    Field("Value", DOUBLE, required=False, source="as_double, or as_int converted; null when the point has no "
          "value (flag NO_RECORDED_VALUE)", example="0.75"),
    Field("IntValue", LONG, required=False, source="as_int; null when the point was a double", example="null",
          doc="Keeps integers above 2^53 exact. Not in ClickHouse."),
    _FLAGS,
    _EXEMPLARS,
)

METRICS_SUM = (
    *METRICS_GAUGE,
    _TEMPORALITY,
    Field("IsMonotonic", BOOLEAN, source="is_monotonic", example="true"),
)

METRICS_HISTOGRAM = (
    *_METRIC_COMMON,
    _COUNT,
    Field("Sum", DOUBLE, required=False, source="sum; null when unset", example="12.5"),
    Field("BucketCounts", ListOf(LONG), source="bucket_counts", example="[1, 0, 4]"),
    Field("ExplicitBounds", ListOf(DOUBLE), source="explicit_bounds", example="[0.1, 1.0]"),
    _EXEMPLARS,
    _FLAGS,
    _MIN,
    _MAX,
    _TEMPORALITY,
)

METRICS_EXPONENTIAL_HISTOGRAM = (
    *_METRIC_COMMON,
    _COUNT,
    Field("Sum", DOUBLE, required=False, source="sum; null when unset", example="123.5"),
    Field("Scale", INT, source="scale", example="3"),
    Field("ZeroCount", LONG, source="zero_count", example="2"),
    Field("PositiveOffset", INT, source="positive.offset", example="4"),
    Field("PositiveBucketCounts", ListOf(LONG), source="positive.bucket_counts", example="[1, 3, 2]"),
    Field("NegativeOffset", INT, source="negative.offset", example="0"),
    Field("NegativeBucketCounts", ListOf(LONG), source="negative.bucket_counts", example="[]"),
    _EXEMPLARS,
    _FLAGS,
    _MIN,
    _MAX,
    _TEMPORALITY,
    Field("ZeroThreshold", DOUBLE, source="zero_threshold", example="1e-9", doc="Not in ClickHouse."),
)

METRICS_SUMMARY = (
    *_METRIC_COMMON,
    _COUNT,
    Field("Sum", DOUBLE, source="sum", example="55.0"),
    Field("ValueAtQuantiles", ListOf(StructOf((
        Field("Quantile", DOUBLE, source="quantile"),
        Field("Value", DOUBLE, source="value"),
    ))), source="quantile_values", example="[{Quantile: 0.5, Value: 50.0}]"),
    _FLAGS,
)


@dataclass(frozen=True)
class TableSpec:
    """One table of the contract: its columns, time column (the partition source) and sort order."""

    name: str
    signal: str
    metric_type: str
    fields: tuple[Field, ...]
    time_column: str
    sort_columns: tuple[str, ...]


_METRIC_SORT = ("ServiceName", "MetricName", "TimeUnix")

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec("logs", "logs", "", LOGS, "Timestamp", ("ServiceName", "Timestamp")),
        TableSpec("traces", "traces", "", TRACES, "Timestamp", ("ServiceName", "Timestamp")),
        TableSpec("metrics_gauge", "metrics", "gauge", METRICS_GAUGE, "TimeUnix", _METRIC_SORT),
        TableSpec("metrics_sum", "metrics", "sum", METRICS_SUM, "TimeUnix", _METRIC_SORT),
        TableSpec("metrics_histogram", "metrics", "histogram", METRICS_HISTOGRAM, "TimeUnix", _METRIC_SORT),
        TableSpec("metrics_exponential_histogram", "metrics", "exponential_histogram",
                  METRICS_EXPONENTIAL_HISTOGRAM, "TimeUnix", _METRIC_SORT),
        TableSpec("metrics_summary", "metrics", "summary", METRICS_SUMMARY, "TimeUnix", _METRIC_SORT),
    )
}
