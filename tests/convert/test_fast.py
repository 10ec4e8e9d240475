"""The native logs, traces and metrics paths give exactly the reference converter's answer, or leave the request
to it.

Each property converts the same bytes both ways: `_fast.convert_<signal>` (C, GIL released) and
`convert_<signal>` with the native path switched off (ptars). Whenever the C code
returns a result it must equal the reference result column for column; where it gives up (None), the converter
must still answer as the reference does.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from bench.workload import requests
from otlp2parquet.buffer import arrow_bytes
from otlp2parquet.convert import _fast, _fastpb, convert_logs, convert_metrics, convert_traces, enable_native
from otlp2parquet.errors import ConversionError, RequestTooLargeError
from tests.gil import ran_alongside
from tests.otlp import any_value, kv

INT64 = st.integers(-(2**63), 2**63 - 1)
UINT32 = st.integers(0, 2**32 - 1)
UINT64 = st.integers(0, 2**64 - 1)
TEXT = st.text(max_size=12)
# Every AnyValue kind the C code formats itself; doubles include NaN, infinities, -0.0, subnormals and the
# 1e10..1e21 range where Arrow and Go disagree.
SCALAR = st.one_of(st.none(), TEXT, st.booleans(), INT64, st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([1e10, 1e20, 1e21, 1e-6, 1e-7, -0.0, 5e-324, 123456789.125]),
                   st.binary(max_size=10))
ATTRIBUTES = st.lists(st.tuples(st.one_of(TEXT, st.just("service.name")), SCALAR), max_size=4)
TRACE_IDS = st.sampled_from([b"", bytes(16), bytes(range(1, 17))])
SPAN_IDS = st.sampled_from([b"", bytes(8), bytes(range(1, 9))])
ENUMS = st.integers(-(2**31), 2**31 - 1) | st.integers(-2, 8)  # known values, unknown ones, negative ones
DOUBLES = st.floats(allow_nan=True, allow_infinity=True)
INT32 = st.integers(-(2**31), 2**31 - 1)


SINGULAR = {"logs": "logs", "traces": "spans", "metrics": "metrics"}


def _kvs(pairs: list[tuple[str, object]]) -> list[common_pb2.KeyValue]:
    return [kv(k, v) for k, v in pairs]


@st.composite
def log_records(draw: st.DrawFn) -> logs_pb2.LogRecord:
    record = logs_pb2.LogRecord(
        time_unix_nano=draw(st.one_of(st.just(0), UINT64)), observed_time_unix_nano=draw(UINT64),
        severity_number=draw(st.integers(-5, 30)), severity_text=draw(TEXT), attributes=_kvs(draw(ATTRIBUTES)),
        dropped_attributes_count=draw(UINT32), flags=draw(UINT32), trace_id=draw(TRACE_IDS),
        span_id=draw(SPAN_IDS), event_name=draw(TEXT))
    body = draw(st.one_of(st.just("absent"), SCALAR))
    if body != "absent":
        record.body.CopyFrom(any_value(body))
    return record


@st.composite
def spans(draw: st.DrawFn) -> trace_pb2.Span:
    span = trace_pb2.Span(
        trace_id=draw(TRACE_IDS), span_id=draw(SPAN_IDS), parent_span_id=draw(SPAN_IDS), trace_state=draw(TEXT),
        name=draw(TEXT), kind=draw(ENUMS), start_time_unix_nano=draw(UINT64), end_time_unix_nano=draw(UINT64),
        attributes=_kvs(draw(ATTRIBUTES)), dropped_attributes_count=draw(UINT32),
        dropped_events_count=draw(UINT32), dropped_links_count=draw(UINT32), flags=draw(UINT32))
    for _ in range(draw(st.integers(0, 2))):
        span.events.add(time_unix_nano=draw(UINT64), name=draw(TEXT), attributes=_kvs(draw(ATTRIBUTES)),
                        dropped_attributes_count=draw(UINT32))
    for _ in range(draw(st.integers(0, 2))):
        span.links.add(trace_id=draw(TRACE_IDS), span_id=draw(SPAN_IDS), trace_state=draw(TEXT),
                       attributes=_kvs(draw(ATTRIBUTES)), dropped_attributes_count=draw(UINT32), flags=draw(UINT32))
    status = draw(st.one_of(st.none(), st.tuples(ENUMS, TEXT)))
    if status is not None:
        span.status.code, span.status.message = status
    return span


def _exemplars(draw: st.DrawFn) -> list[metrics_pb2.Exemplar]:
    exemplars = []
    for _ in range(draw(st.integers(0, 2))):
        ex = metrics_pb2.Exemplar(filtered_attributes=_kvs(draw(ATTRIBUTES)), time_unix_nano=draw(UINT64),
                                  span_id=draw(SPAN_IDS), trace_id=draw(TRACE_IDS))
        value = draw(st.one_of(st.none(), DOUBLES, INT64))
        if isinstance(value, float):
            ex.as_double = value
        elif value is not None:
            ex.as_int = value
        exemplars.append(ex)
    return exemplars


def _point_common(draw: st.DrawFn) -> dict:
    return {"attributes": _kvs(draw(ATTRIBUTES)), "start_time_unix_nano": draw(UINT64),
            "time_unix_nano": draw(UINT64), "flags": draw(UINT32)}


def _optional(draw: st.DrawFn, point: object, *names: str) -> None:
    for name in names:
        if draw(st.booleans()):
            setattr(point, name, draw(DOUBLES))


@st.composite
def metric(draw: st.DrawFn) -> metrics_pb2.Metric:
    """One metric of any type (or none), with 0-3 points covering every field and the optional ones unset."""
    m = metrics_pb2.Metric(name=draw(TEXT), description=draw(TEXT), unit=draw(TEXT),
                           metadata=_kvs(draw(ATTRIBUTES)))
    kind = draw(st.sampled_from(["none", "gauge", "sum", "histogram", "exponential_histogram", "summary"]))
    points = range(draw(st.integers(0, 3)))
    if kind in ("gauge", "sum"):
        data = getattr(m, kind)
        for _ in points:
            p = data.data_points.add(exemplars=_exemplars(draw), **_point_common(draw))
            value = draw(st.one_of(st.none(), DOUBLES, INT64))
            if isinstance(value, float):
                p.as_double = value
            elif value is not None:
                p.as_int = value
        if kind == "sum":
            m.sum.aggregation_temporality, m.sum.is_monotonic = draw(ENUMS), draw(st.booleans())
        else:
            m.gauge.SetInParent()
    elif kind == "histogram":
        m.histogram.aggregation_temporality = draw(ENUMS)
        for _ in points:
            p = m.histogram.data_points.add(
                exemplars=_exemplars(draw), count=draw(UINT64), bucket_counts=draw(st.lists(UINT64, max_size=4)),
                explicit_bounds=draw(st.lists(DOUBLES, max_size=3)), **_point_common(draw))
            _optional(draw, p, "sum", "min", "max")
    elif kind == "exponential_histogram":
        m.exponential_histogram.aggregation_temporality = draw(ENUMS)
        for _ in points:
            p = m.exponential_histogram.data_points.add(
                exemplars=_exemplars(draw), count=draw(UINT64), scale=draw(INT32), zero_count=draw(UINT64),
                zero_threshold=draw(DOUBLES), **_point_common(draw))
            _optional(draw, p, "sum", "min", "max")
            for side in ("positive", "negative"):
                if draw(st.booleans()):
                    getattr(p, side).offset = draw(INT32)
                    getattr(p, side).bucket_counts.extend(draw(st.lists(UINT64, max_size=4)))
    elif kind == "summary":
        for _ in points:
            p = m.summary.data_points.add(count=draw(UINT64), sum=draw(DOUBLES), **_point_common(draw))
            for _ in range(draw(st.integers(0, 3))):
                p.quantile_values.add(quantile=draw(DOUBLES), value=draw(DOUBLES))
    return m


@st.composite
def _requests(draw: st.DrawFn, signal: str) -> object:
    """Up to three resources of up to three scopes of up to four items, with and without resources and scopes."""
    req = {"logs": ExportLogsServiceRequest, "traces": ExportTraceServiceRequest,
           "metrics": ExportMetricsServiceRequest}[signal]()
    for _ in range(draw(st.integers(0, 3))):
        rl = getattr(req, f"resource_{SINGULAR[signal]}").add(schema_url=draw(TEXT))
        if draw(st.booleans()):
            rl.resource.CopyFrom(resource_pb2.Resource(attributes=_kvs(draw(ATTRIBUTES)),
                                                       dropped_attributes_count=draw(UINT32)))
        for _ in range(draw(st.integers(0, 3))):
            sl = getattr(rl, f"scope_{SINGULAR[signal]}").add(schema_url=draw(TEXT))
            if draw(st.booleans()):
                sl.scope.CopyFrom(common_pb2.InstrumentationScope(
                    name=draw(TEXT), version=draw(TEXT), attributes=_kvs(draw(ATTRIBUTES)),
                    dropped_attributes_count=draw(UINT32)))
            if signal == "logs":
                sl.log_records.extend(draw(st.lists(log_records(), max_size=4)))
            elif signal == "traces":
                sl.spans.extend(draw(st.lists(spans(), max_size=4)))
            else:
                sl.metrics.extend(draw(st.lists(metric(), max_size=4)))
    return req


@contextmanager
def native(on: bool) -> Iterator[None]:
    enable_native(on)
    try:
        yield
    finally:
        enable_native(True)


FAST = {"logs": _fast.convert_logs, "traces": _fast.convert_traces, "metrics": _fast.convert_metrics}
CONVERT = {"logs": convert_logs, "traces": convert_traces, "metrics": convert_metrics}
SCHEMAS = {"logs": _fast.LOGS, "traces": _fast.TRACES,
           **{f"metrics_{kind}": schema for kind, schema in _fast.METRICS.items()}}


def reference(signal: str, data: bytes) -> object:
    """The reference answer: a comparable view of the result, or the error it raises."""
    with native(False):
        return _view_or_error(signal, data)


def _comparable(value: object) -> object:
    """NaN made equal to NaN (metrics carry doubles), recursively through lists, structs and maps."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_comparable(v) for v in value)
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    return value


def _view(result) -> tuple:
    batches = {t: _comparable(b.to_pydict()) for t, b in result.batches.items()}
    return batches, result.accepted, result.rejected, dict(result.reasons), result.warnings


def _check(data: bytes, signal: str = "logs") -> bool:
    """Assert the native answer equals the reference one; True if the native path took the request."""
    fast = FAST[signal](data)
    expected = reference(signal, data)
    if fast is None:
        assert _view_or_error(signal, data) == expected  # the converter falls back and answers as the reference
        return False
    assert _view(fast) == expected
    for table, batch in fast.batches.items():
        batch.validate(full=True)
        assert batch.schema == SCHEMAS[table], table
    if rows := sum(arrow_bytes(batch) for batch in fast.batches.values()):
        # the walk's count of the rows' bytes never passes the real figure: a limit refuses nothing that fits
        assert _view(FAST[signal](data, rows)) == expected
    return True


def _view_or_error(signal: str, data: bytes) -> object:
    try:
        return _view(CONVERT[signal](data))
    except ConversionError as exc:
        return f"ConversionError: {exc}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requests("logs"))
def test_well_formed_logs_convert_natively_and_exactly_as_the_reference(req: ExportLogsServiceRequest) -> None:
    assert _check(req.SerializeToString())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requests("traces"))
def test_well_formed_traces_convert_natively_and_exactly_as_the_reference(req: ExportTraceServiceRequest) -> None:
    assert _check(req.SerializeToString(), "traces")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requests("metrics"))
def test_well_formed_metrics_convert_natively_and_exactly_as_the_reference(req: ExportMetricsServiceRequest) -> None:
    assert _check(req.SerializeToString(), "metrics")


@pytest.mark.parametrize("signal", ["logs", "traces", "metrics"])
def test_the_benchmark_workload_converts_natively_and_exactly_as_the_reference(signal: str) -> None:
    for data in requests(signal, 1000, 3):
        assert _check(data, signal)


@pytest.mark.parametrize("why,req", [
    ("an array body", ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(scope_logs=[
        logs_pb2.ScopeLogs(log_records=[logs_pb2.LogRecord(body=any_value([1, "a"]))])])])),
    ("a kvlist attribute", ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(scope_logs=[
        logs_pb2.ScopeLogs(log_records=[logs_pb2.LogRecord(attributes=[kv("k", {"a": 1})])])])])),
    ("a 3-byte trace id", ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(scope_logs=[
        logs_pb2.ScopeLogs(log_records=[logs_pb2.LogRecord(trace_id=b"abc"), logs_pb2.LogRecord()])])])),
    ("entity refs", ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(
        resource=resource_pb2.Resource(entity_refs=[common_pb2.EntityRef(type="host")]),
        scope_logs=[logs_pb2.ScopeLogs(log_records=[logs_pb2.LogRecord()])])])),
])
def test_what_the_native_path_leaves_alone_is_answered_by_the_reference(why: str,
                                                                       req: ExportLogsServiceRequest) -> None:
    assert not _check(req.SerializeToString()), why


def _one_span(span: trace_pb2.Span, resource: resource_pb2.Resource | None = None) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(
        resource=resource, scope_spans=[trace_pb2.ScopeSpans(spans=[span, trace_pb2.Span(name="ok")])])])


@pytest.mark.parametrize("why,req", [
    ("a 3-byte parent span id", _one_span(trace_pb2.Span(parent_span_id=b"abc"))),
    ("a 15-byte link trace id", _one_span(trace_pb2.Span(links=[trace_pb2.Span.Link(trace_id=bytes(range(15)))]))),
    ("a 9-byte link span id", _one_span(trace_pb2.Span(links=[trace_pb2.Span.Link(span_id=bytes(range(9)))]))),
    ("an array event attribute", _one_span(trace_pb2.Span(events=[trace_pb2.Span.Event(
        attributes=[kv("k", [1, 2])])]))),
    ("a kvlist link attribute", _one_span(trace_pb2.Span(links=[trace_pb2.Span.Link(
        attributes=[kv("k", {"a": "b"})])]))),
    ("entity refs", _one_span(trace_pb2.Span(), resource_pb2.Resource(
        entity_refs=[common_pb2.EntityRef(type="host")]))),
])
def test_what_the_native_traces_path_leaves_alone_is_answered_by_the_reference(
        why: str, req: ExportTraceServiceRequest) -> None:
    assert not _check(req.SerializeToString(), "traces"), why


def _field(number: int, body: bytes) -> bytes:
    """A length-delimited field (short bodies only)."""
    assert len(body) < 128
    return bytes([number << 3 | 2, len(body)]) + body


def _one_item(item: bytes) -> bytes:
    """A request of any signal holding one resource, one scope and `item` (a record, span or metric's bytes)."""
    return _field(1, _field(2, _field(2, item)))


def _histogram_metric(point: metrics_pb2.HistogramDataPoint) -> bytes:
    return metrics_pb2.Metric(name="h", histogram=metrics_pb2.Histogram(data_points=[point])).SerializeToString()


@pytest.mark.parametrize("why,data", [
    ("a 3-byte exemplar span id", _one_item(_histogram_metric(metrics_pb2.HistogramDataPoint(
        exemplars=[metrics_pb2.Exemplar(span_id=b"abc")])))),
    ("an array point attribute", _one_item(metrics_pb2.Metric(gauge=metrics_pb2.Gauge(data_points=[
        metrics_pb2.NumberDataPoint(attributes=[kv("k", [1])])])).SerializeToString())),
    ("a gauge and a sum in one metric (protobuf keeps the last)", _one_item(
        metrics_pb2.Metric(gauge=metrics_pb2.Gauge(data_points=[metrics_pb2.NumberDataPoint(as_int=1)]))
        .SerializeToString() + metrics_pb2.Metric(sum=metrics_pb2.Sum(data_points=[metrics_pb2.NumberDataPoint(
            as_int=2)])).SerializeToString())),
    ("a point with as_double and as_int (protobuf keeps the last)", _one_item(_field(5, _field(
        1, metrics_pb2.NumberDataPoint(as_double=1.5).SerializeToString()
        + metrics_pb2.NumberDataPoint(as_int=3).SerializeToString())))),
])
def test_what_the_native_metrics_path_leaves_alone_is_answered_by_the_reference(why: str, data: bytes) -> None:
    assert not _check(data, "metrics"), why


def test_unpacked_bucket_counts_and_bounds_convert_natively_as_the_reference_reads_them() -> None:
    """proto3 writers pack repeated numbers, but a parser must accept them one field each too."""
    point = b"".join(b"\x31" + struct.pack("<Q", n) for n in (5, 7)) + b"\x39" + struct.pack("<d", 2.5)
    data = _one_item(metrics_pb2.Metric(name="h").SerializeToString() + _field(9, _field(1, point)))
    assert _check(data, "metrics")
    row = convert_metrics(data).batches["metrics_histogram"].to_pylist()[0]
    assert (row["BucketCounts"], row["ExplicitBounds"]) == ([5, 7], [2.5])


def test_a_status_sent_twice_is_left_to_the_reference() -> None:
    """protobuf merges the two (code from one, message from the other); the C code does not try."""
    span = trace_pb2.Span(name="s", status=trace_pb2.Status(code=2)).SerializeToString() + trace_pb2.Span(
        status=trace_pb2.Status(message="late")).SerializeToString()
    data = ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(scope_spans=[
        trace_pb2.ScopeSpans(spans=[trace_pb2.Span.FromString(span)])])]).SerializeToString()
    assert _check(data, "traces")  # parsed and re-serialised: one merged status, which the C code takes
    raw = _one_item(span)
    assert not _check(raw, "traces")
    assert convert_traces(raw).batches["traces"].to_pydict()["StatusCode"] == ["Error"]


def test_invalid_utf8_is_left_to_the_reference_repair() -> None:
    data = ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(scope_logs=[logs_pb2.ScopeLogs(
        log_records=[logs_pb2.LogRecord(severity_text="MARK")])])]).SerializeToString()
    data = data.replace(b"MARK", b"M\xffRK")
    assert not _check(data)
    assert "U+FFFD" in convert_logs(data).message()


def test_a_repeated_singular_field_is_left_to_the_reference() -> None:
    record = logs_pb2.LogRecord(severity_text="a").SerializeToString() + logs_pb2.LogRecord(
        severity_text="b").SerializeToString()  # protobuf: the last one wins
    assert not _check(_one_item(record))


@pytest.mark.parametrize("signal", ["logs", "traces", "metrics"])
@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_damaged_bytes_never_crash_and_never_disagree(signal: str, data: st.DataObject) -> None:
    """Flipped, cut or inserted bytes in a real request: whatever the C code accepts, the reference accepts
    the same way."""
    original = bytearray(next(iter(requests(signal, 20, 1, seed=data.draw(st.integers(0, 5))))))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(original) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            original[at] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "cut":
            del original[at:]
            if not original:
                break
        else:
            original[at:at] = data.draw(st.binary(min_size=1, max_size=3))
    _check(bytes(original), signal)


def test_the_gil_is_released_while_the_c_code_walks_a_request() -> None:
    """Python work of about the same length, which holds the GIL, is the control."""
    logs, traces = b"".join(requests("logs", 8192, 4)), b"".join(requests("traces", 8192, 4))
    metrics = b"".join(requests("metrics", 8192, 4))

    def python_work() -> None:
        total = 0
        for i in range(2_000_000):
            total += i

    assert ran_alongside(lambda: _fastpb.decode_logs(logs))
    assert ran_alongside(lambda: _fastpb.decode_traces(traces))
    assert ran_alongside(lambda: _fastpb.decode_metrics(metrics))
    assert not ran_alongside(python_work)


# ---- a limit on the rows' bytes -------------------------------------------------------------------------------

@pytest.mark.parametrize("signal", ["logs", "traces", "metrics"])
def test_a_limit_refuses_a_request_whose_rows_pass_it(signal: str) -> None:
    """(That a limit of exactly the rows' bytes refuses nothing, `_check` asserts for every request above.)"""
    data = next(requests(signal, 1000, 1, seed=5))
    rows = sum(arrow_bytes(batch) for batch in CONVERT[signal](data).batches.values())
    with pytest.raises(RequestTooLargeError, match=rf"rows take at least \d+ bytes .* budget \({rows // 2} bytes"):
        CONVERT[signal](data, rows // 2)


_SWOLLEN = """
import json, sys
from otlp2parquet.convert import CONVERTERS
from otlp2parquet.errors import RequestTooLargeError
from tests.otlp import swollen
answers = []
for signal, on_metric in json.loads(sys.argv[1]):
    try:
        CONVERTERS[signal](swollen(signal, 20_000, 64_000, on_metric), 160 * 2**20)
        answers.append("converted")
    except RequestTooLargeError as exc:
        answers.append(str(exc))
# VmHWM, not ru_maxrss: the latter keeps the peak of the (forked) test process this one was executed from
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps([answers, peak_kib // 1024]))
"""


def test_rows_that_would_dwarf_the_limit_are_refused_before_they_take_the_memory() -> None:
    """20,000 empty items under 64 KB of resource (or metric) attributes: a 100-300 KB request whose rows would
    take 1.3 GB. Run in a process of its own, whose peak RSS is this conversion's alone."""
    cases = [["logs", False], ["traces", False], ["metrics", False], ["metrics", True]]
    out = subprocess.run([sys.executable, "-c", _SWOLLEN, json.dumps(cases)], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    answers, peak_mib = json.loads(out)
    assert all("rows take at least" in a and "(167772160 bytes" in a for a in answers), answers
    assert peak_mib < 400, f"peak RSS {peak_mib} MiB: the rows were built before being refused"
