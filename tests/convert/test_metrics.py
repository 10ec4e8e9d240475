"""Golden and edge-case tests for the five `metrics_*` tables."""

from __future__ import annotations

import math

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from otlp2parquet.convert import convert_metrics
from otlp2parquet.schemas import arrow_schema
from tests.otlp import kv, ns, ts

T0, T1 = ns("2026-01-01T00:00:00"), ns("2026-01-01T00:01:00")
TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN = bytes.fromhex("eee19b7ec3c1b174")

COMMON = {
    "ResourceAttributes": [("service.name", "api")],
    "ResourceSchemaUrl": "https://opentelemetry.io/schemas/1.26.0",
    "ResourceDroppedAttributesCount": 0,
    "ScopeName": "app.meter",
    "ScopeVersion": "3.0",
    "ScopeAttributes": [("k", "v")],
    "ScopeDroppedAttrCount": 0,
    "ScopeSchemaUrl": "",
    "ResourceEntityRefs": [],
    "ServiceName": "api",
}


def _request() -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add(resource=Resource(attributes=[kv("service.name", "api")]),
                                  schema_url="https://opentelemetry.io/schemas/1.26.0")
    sm = rm.scope_metrics.add(scope=InstrumentationScope(name="app.meter", version="3.0", attributes=[kv("k", "v")]))
    gauge = sm.metrics.add(name="temperature", unit="Cel", description="room", metadata=[kv("origin", "sensor")])
    gauge.gauge.data_points.add(time_unix_nano=T1, as_double=21.5, attributes=[kv("room", "a")])
    gauge.gauge.data_points.add(time_unix_nano=T1, as_int=2**62 + 1, flags=1)
    gauge.gauge.data_points.add(time_unix_nano=T1, as_double=math.nan)
    gauge.gauge.data_points.add(time_unix_nano=T1)  # no value recorded
    total = sm.metrics.add(name="requests", unit="{request}")
    total.sum.aggregation_temporality, total.sum.is_monotonic = m.AGGREGATION_TEMPORALITY_CUMULATIVE, True
    total.sum.data_points.add(start_time_unix_nano=T0, time_unix_nano=T1, as_int=42, exemplars=[
        m.Exemplar(time_unix_nano=T1, as_int=7, trace_id=TRACE, span_id=SPAN, filtered_attributes=[kv("user", "u1")])])
    delta = sm.metrics.add(name="bytes")
    delta.sum.aggregation_temporality = m.AGGREGATION_TEMPORALITY_DELTA
    delta.sum.data_points.add(start_time_unix_nano=T0, time_unix_nano=T1, as_double=math.inf)
    hist = sm.metrics.add(name="latency", unit="s")
    hist.histogram.aggregation_temporality = m.AGGREGATION_TEMPORALITY_DELTA
    hist.histogram.data_points.add(start_time_unix_nano=T0, time_unix_nano=T1, count=3, sum=1.5, min=0.1, max=1.0,
                                   bucket_counts=[1, 2, 0], explicit_bounds=[0.5, 1.0],
                                   exemplars=[m.Exemplar(time_unix_nano=T1, as_double=0.7)])
    hist.histogram.data_points.add(start_time_unix_nano=T0, time_unix_nano=T1, count=0)  # sum/min/max unset
    exp = sm.metrics.add(name="size")
    exp.exponential_histogram.aggregation_temporality = m.AGGREGATION_TEMPORALITY_CUMULATIVE
    exp.exponential_histogram.data_points.add(
        start_time_unix_nano=T0, time_unix_nano=T1, count=6, sum=30.0, scale=2, zero_count=1, zero_threshold=1e-9,
        positive=m.ExponentialHistogramDataPoint.Buckets(offset=3, bucket_counts=[2, 3]),
        negative=m.ExponentialHistogramDataPoint.Buckets(offset=-1, bucket_counts=[0]), min=-1.0, max=9.0)
    summary = sm.metrics.add(name="gc")
    summary.summary.data_points.add(time_unix_nano=T1, count=4, sum=-math.inf, quantile_values=[
        m.SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=2.0),
        m.SummaryDataPoint.ValueAtQuantile(quantile=1.0, value=5.0)])
    return req


def _metric(name: str, unit: str = "", description: str = "", metadata: list | None = None) -> dict:
    return {"MetricName": name, "MetricDescription": description, "MetricUnit": unit, "MetricMetadata": metadata or []}


EPOCH = ts("1970-01-01T00:00:00")
START, TIME = ts("2026-01-01T00:00:00"), ts("2026-01-01T00:01:00")
EXPECTED: dict[str, list[dict]] = {
    "metrics_gauge": [
        {**_metric("temperature", "Cel", "room", [("origin", "sensor")]), "Attributes": [("room", "a")],
         "StartTimeUnix": EPOCH, "TimeUnix": TIME, "Value": 21.5, "IntValue": None, "Flags": 0, "Exemplars": []},
        {**_metric("temperature", "Cel", "room", [("origin", "sensor")]), "Attributes": [],
         "StartTimeUnix": EPOCH, "TimeUnix": TIME, "Value": float(2**62 + 1), "IntValue": 2**62 + 1, "Flags": 1,
         "Exemplars": []},
        {**_metric("temperature", "Cel", "room", [("origin", "sensor")]), "Attributes": [],
         "StartTimeUnix": EPOCH, "TimeUnix": TIME, "Value": "nan", "IntValue": None, "Flags": 0, "Exemplars": []},
        {**_metric("temperature", "Cel", "room", [("origin", "sensor")]), "Attributes": [],
         "StartTimeUnix": EPOCH, "TimeUnix": TIME, "Value": None, "IntValue": None, "Flags": 0, "Exemplars": []},
    ],
    "metrics_sum": [
        {**_metric("requests", "{request}"), "Attributes": [], "StartTimeUnix": START, "TimeUnix": TIME,
         "Value": 42.0, "IntValue": 42, "Flags": 0,
         "Exemplars": [{"FilteredAttributes": [("user", "u1")], "TimeUnix": TIME, "Value": 7.0, "IntValue": 7,
                        "SpanId": "eee19b7ec3c1b174", "TraceId": "5b8efff798038103d269b633813fc60c"}],
         "AggregationTemporality": 2, "IsMonotonic": True},
        {**_metric("bytes"), "Attributes": [], "StartTimeUnix": START, "TimeUnix": TIME, "Value": math.inf,
         "IntValue": None, "Flags": 0, "Exemplars": [], "AggregationTemporality": 1, "IsMonotonic": False},
    ],
    "metrics_histogram": [
        {**_metric("latency", "s"), "Attributes": [], "StartTimeUnix": START, "TimeUnix": TIME, "Count": 3,
         "Sum": 1.5, "BucketCounts": [1, 2, 0], "ExplicitBounds": [0.5, 1.0],
         "Exemplars": [{"FilteredAttributes": [], "TimeUnix": TIME, "Value": 0.7, "IntValue": None,
                        "SpanId": "", "TraceId": ""}],
         "Flags": 0, "Min": 0.1, "Max": 1.0, "AggregationTemporality": 1},
        {**_metric("latency", "s"), "Attributes": [], "StartTimeUnix": START, "TimeUnix": TIME, "Count": 0,
         "Sum": None, "BucketCounts": [], "ExplicitBounds": [], "Exemplars": [], "Flags": 0, "Min": None,
         "Max": None, "AggregationTemporality": 1},
    ],
    "metrics_exponential_histogram": [
        {**_metric("size"), "Attributes": [], "StartTimeUnix": START, "TimeUnix": TIME, "Count": 6, "Sum": 30.0,
         "Scale": 2, "ZeroCount": 1, "PositiveOffset": 3, "PositiveBucketCounts": [2, 3], "NegativeOffset": -1,
         "NegativeBucketCounts": [0], "Exemplars": [], "Flags": 0, "Min": -1.0, "Max": 9.0,
         "AggregationTemporality": 2, "ZeroThreshold": 1e-9},
    ],
    "metrics_summary": [
        {**_metric("gc"), "Attributes": [], "StartTimeUnix": EPOCH, "TimeUnix": TIME, "Count": 4,
         "Sum": -math.inf, "ValueAtQuantiles": [{"Quantile": 0.5, "Value": 2.0}, {"Quantile": 1.0, "Value": 5.0}],
         "Flags": 0},
    ],
}


def _nan_as_text(value: object) -> object:
    return "nan" if isinstance(value, float) and math.isnan(value) else value


def test_golden_rows_for_every_metric_type() -> None:
    result = convert_metrics(_request().SerializeToString())
    assert (result.accepted, result.rejected) == (10, 0)
    assert sorted(result.batches) == sorted(EXPECTED)
    for table, rows in EXPECTED.items():
        batch = result.batches[table]
        assert batch.schema == arrow_schema(table)
        assert set(rows[0]) | set(COMMON) == set(batch.schema.names), table
        for name in batch.schema.names:
            expected = [row[name] if name in row else COMMON[name] for row in rows]
            actual = [_nan_as_text(v) for v in batch.column(name).to_pylist()]
            assert actual == expected, f"{table}.{name}"


def test_point_with_bad_exemplar_id_is_rejected_alone() -> None:
    req = _request()
    bad = req.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points.add(as_double=1.0)
    bad.exemplars.add(trace_id=b"\x01" * 5)
    result = convert_metrics(req.SerializeToString())
    assert (result.accepted, result.rejected) == (10, 1)
    assert result.reasons == {"data points with exemplar trace_id must be 0 or 16 bytes": 1}
    assert result.batches["metrics_gauge"].num_rows == 4


def test_metric_without_data_adds_no_rows() -> None:
    req = ExportMetricsServiceRequest()
    req.resource_metrics.add().scope_metrics.add().metrics.add(name="empty")
    result = convert_metrics(req.SerializeToString())
    assert (result.batches, result.accepted, result.rejected) == ({}, 0, 0)
