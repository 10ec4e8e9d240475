"""ExportMetricsServiceRequest bytes -> the five `metrics_*` tables, one per metric type."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from otlp2parquet.convert import _fast
from otlp2parquet.convert._arrays import attributes, explode, hex_ids, relist, timestamps, to_int64
from otlp2parquet.convert._arrays import field as member
from otlp2parquet.convert._common import (
    DOUBLE_LIST,
    EXEMPLARS_TYPE,
    LONG_LIST,
    METRIC_TYPES,
    QUANTILES_TYPE,
    ConversionResult,
    DecodedMemory,
    Levels,
    Nesting,
    build_batch,
    levels,
    unnest,
)
from otlp2parquet.convert._decode import decode
from otlp2parquet.convert._validate import Validation
from otlp2parquet.schemas import arrow_schema

Columns = dict[str, pa.Array]


def _number_value(points: pa.Array) -> Columns:
    as_int = member(points, "as_int")
    value = pc.coalesce(member(points, "as_double"), as_int.cast(pa.float64(), safe=False))
    return {"Value": value, "IntValue": as_int}


def _exemplars(points: pa.Array) -> pa.Array:
    lists = member(points, "exemplars")
    ex = lists.flatten()
    as_int = member(ex, "as_int")
    items = pa.StructArray.from_arrays(
        [attributes(member(ex, "filtered_attributes")), timestamps(member(ex, "time_unix_nano")),
         pc.fill_null(pc.coalesce(member(ex, "as_double"), as_int.cast(pa.float64(), safe=False)), float("nan")),
         as_int, hex_ids(member(ex, "span_id"), 8), hex_ids(member(ex, "trace_id"), 16)],
        fields=list(EXEMPLARS_TYPE.value_type))
    return relist(lists, items, EXEMPLARS_TYPE)


def _longs(lists: pa.Array) -> pa.Array:
    return relist(lists, to_int64(lists.flatten()), LONG_LIST)


def _buckets(points: pa.Array, side: str) -> Columns:
    buckets = member(points, side)
    counts = member(buckets, "bucket_counts")
    prefix = side.capitalize()
    return {f"{prefix}Offset": pc.fill_null(member(buckets, "offset"), 0),
            f"{prefix}BucketCounts": _longs(pc.if_else(pc.is_null(counts), pa.scalar([], counts.type), counts))}


def _histogram_common(points: pa.Array) -> Columns:
    return {"Count": to_int64(member(points, "count")), "Sum": member(points, "sum"),
            "Min": member(points, "min"), "Max": member(points, "max")}


def _type_columns(kind: str, points: pa.Array) -> Columns:
    """Point-level columns specific to one metric type."""
    columns: Columns = {"Flags": to_int64(member(points, "flags"))}
    if kind != "summary":
        columns["Exemplars"] = _exemplars(points)
    if kind in ("gauge", "sum"):
        columns.update(_number_value(points))
    if kind == "histogram":
        columns.update(_histogram_common(points))
        columns["BucketCounts"] = _longs(member(points, "bucket_counts"))
        columns["ExplicitBounds"] = relist(member(points, "explicit_bounds"),
                                           member(points, "explicit_bounds").flatten(), DOUBLE_LIST)
    if kind == "exponential_histogram":
        columns.update(_histogram_common(points))
        columns.update(_buckets(points, "positive"))
        columns.update(_buckets(points, "negative"))
        columns.update({"Scale": member(points, "scale"), "ZeroCount": to_int64(member(points, "zero_count")),
                        "ZeroThreshold": member(points, "zero_threshold")})
    if kind == "summary":
        columns["Count"] = to_int64(member(points, "count"))
        columns["Sum"] = member(points, "sum")
        lists = member(points, "quantile_values")
        q = lists.flatten()
        items = pa.StructArray.from_arrays([member(q, "quantile"), member(q, "value")],
                                           fields=list(QUANTILES_TYPE.value_type))
        columns["ValueAtQuantiles"] = relist(lists, items, QUANTILES_TYPE)
    return columns


def _table(kind: str, metrics: Nesting, shared: Levels, metric_columns: Columns, check: Validation,
           points: pa.Array, point_metric: pa.Array, decoded: DecodedMemory) -> pa.RecordBatch | None:
    mask = check.mask()
    if mask is not None:
        points, point_metric = points.filter(mask), point_metric.filter(mask)
    if len(points) == 0:
        return None
    columns = shared.repeat(metrics.item_resource.take(point_metric), metrics.item_scope.take(point_metric))
    columns.update({name: col.take(point_metric) for name, col in metric_columns.items()})
    data = member(metrics.items, kind)
    if kind in ("sum", "histogram", "exponential_histogram"):
        columns["AggregationTemporality"] = member(data, "aggregation_temporality").take(point_metric)
    if kind == "sum":
        columns["IsMonotonic"] = member(data, "is_monotonic").take(point_metric)
    columns.update({
        "Attributes": attributes(member(points, "attributes")),
        "StartTimeUnix": timestamps(member(points, "start_time_unix_nano")),
        "TimeUnix": timestamps(member(points, "time_unix_nano")),
        **_type_columns(kind, points),
    })
    return build_batch(arrow_schema(f"metrics_{kind}"), columns, decoded)


def _exemplar_checks(check: Validation, points: pa.Array) -> None:
    exemplars, owner = explode(member(points, "exemplars"))
    check.id_length(member(exemplars, "trace_id"), 16, "exemplar trace_id must be 0 or 16 bytes", owner)
    check.id_length(member(exemplars, "span_id"), 8, "exemplar span_id must be 0 or 8 bytes", owner)


def convert_metrics(data: bytes, limit: int | None = None) -> ConversionResult:
    fast = _fast.convert_metrics(data, limit)  # the GIL released; None when off or for what it leaves to the code below
    if fast is not None:
        return fast
    request, repaired = decode("metrics", data)
    metrics = unnest(request, "resource_metrics", "scope_metrics", "metrics")
    items = metrics.items
    metric_columns: Columns = {
        "MetricName": member(items, "name"),
        "MetricDescription": member(items, "description"),
        "MetricUnit": member(items, "unit"),
        "MetricMetadata": attributes(member(items, "metadata")),
    }
    shared = levels(metrics, "ScopeDroppedAttrCount")
    decoded = DecodedMemory(request)
    result = ConversionResult()
    for kind in METRIC_TYPES:
        points, point_metric = explode(member(member(items, kind), "data_points"))
        check = Validation(len(points), "data point")
        if kind != "summary":
            _exemplar_checks(check, points)
        batch = _table(kind, metrics, shared, metric_columns, check, points, point_metric, decoded)
        if batch is not None:
            result.batches[f"metrics_{kind}"] = batch
        result.merge(check.result())
    result.note_repaired(repaired)
    return result
