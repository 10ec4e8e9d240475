"""The native logs path gives exactly the reference converter's answer, or leaves the request to it.

Each property converts the same bytes both ways: `_fast.convert_logs` (C, GIL released) and `convert_logs` with
the native path switched off (ptars). Whenever the C code returns a result it must equal the reference result
column for column; where it gives up (None), `convert_logs` must still answer as the reference does.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from bench.workload import requests
from otlp2parquet.convert import _fast, _fastpb, convert_logs, enable_native
from otlp2parquet.errors import ConversionError
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


def _kvs(pairs: list[tuple[str, object]]) -> list[common_pb2.KeyValue]:
    return [kv(k, v) for k, v in pairs]


@st.composite
def log_records(draw: st.DrawFn) -> logs_pb2.LogRecord:
    record = logs_pb2.LogRecord(
        time_unix_nano=draw(st.one_of(st.just(0), UINT64)), observed_time_unix_nano=draw(UINT64),
        severity_number=draw(st.integers(-5, 30)), severity_text=draw(TEXT), attributes=_kvs(draw(ATTRIBUTES)),
        dropped_attributes_count=draw(UINT32), flags=draw(UINT32),
        trace_id=draw(st.sampled_from([b"", bytes(16), bytes(range(1, 17))])),
        span_id=draw(st.sampled_from([b"", bytes(8), bytes(range(1, 9))])), event_name=draw(TEXT))
    body = draw(st.one_of(st.just("absent"), SCALAR))
    if body != "absent":
        record.body.CopyFrom(any_value(body))
    return record


@st.composite
def logs_requests(draw: st.DrawFn) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        rl = req.resource_logs.add(schema_url=draw(TEXT))
        if draw(st.booleans()):
            rl.resource.CopyFrom(resource_pb2.Resource(attributes=_kvs(draw(ATTRIBUTES)),
                                                       dropped_attributes_count=draw(UINT32)))
        for _ in range(draw(st.integers(0, 3))):
            sl = rl.scope_logs.add(schema_url=draw(TEXT))
            if draw(st.booleans()):
                sl.scope.CopyFrom(common_pb2.InstrumentationScope(
                    name=draw(TEXT), version=draw(TEXT), attributes=_kvs(draw(ATTRIBUTES)),
                    dropped_attributes_count=draw(UINT32)))
            sl.log_records.extend(draw(st.lists(log_records(), max_size=4)))
    return req


@contextmanager
def native(on: bool) -> Iterator[None]:
    enable_native(on)
    try:
        yield
    finally:
        enable_native(True)


def reference(data: bytes) -> object:
    """The reference answer: a comparable view of the result, or the error it raises."""
    with native(False):
        return _view_or_error(data)


def _view(result) -> tuple:
    batches = {t: b.to_pydict() for t, b in result.batches.items()}  # NaN-free: every column is text or a number
    return batches, result.accepted, result.rejected, dict(result.reasons), result.warnings


def _check(data: bytes) -> bool:
    """Assert the native answer equals the reference one; True if the native path took the request."""
    fast = _fast.convert_logs(data)
    expected = reference(data)
    if fast is None:
        assert _view_or_error(data) == expected  # convert_logs falls back and answers as the reference does
        return False
    assert _view(fast) == expected
    for table, batch in fast.batches.items():
        batch.validate(full=True)
        assert batch.schema == _fast.LOGS, table
    return True


def _view_or_error(data: bytes) -> object:
    try:
        return _view(convert_logs(data))
    except ConversionError as exc:
        return f"ConversionError: {exc}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs_requests())
def test_well_formed_requests_convert_natively_and_exactly_as_the_reference(req: ExportLogsServiceRequest) -> None:
    assert _check(req.SerializeToString())


def test_the_benchmark_workload_converts_natively_and_exactly_as_the_reference() -> None:
    for data in requests("logs", 1000, 3):
        assert _check(data)


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


def test_invalid_utf8_is_left_to_the_reference_repair() -> None:
    data = ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(scope_logs=[logs_pb2.ScopeLogs(
        log_records=[logs_pb2.LogRecord(severity_text="MARK")])])]).SerializeToString()
    data = data.replace(b"MARK", b"M\xffRK")
    assert not _check(data)
    assert "U+FFFD" in convert_logs(data).message()


def test_a_repeated_singular_field_is_left_to_the_reference() -> None:
    record = logs_pb2.LogRecord(severity_text="a").SerializeToString() + logs_pb2.LogRecord(
        severity_text="b").SerializeToString()  # protobuf: the last one wins
    scope = b"\x12" + bytes([len(record)]) + record
    resource = b"\x12" + bytes([len(scope)]) + scope
    data = b"\x0a" + bytes([len(resource)]) + resource
    assert not _check(data)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_damaged_bytes_never_crash_and_never_disagree(data: st.DataObject) -> None:
    """Flipped, cut or inserted bytes in a real request: whatever the C code accepts, the reference accepts
    the same way."""
    original = bytearray(next(iter(requests("logs", 20, 1, seed=data.draw(st.integers(0, 5))))))
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
    _check(bytes(original))


def _ran_alongside(call: Callable[[], object]) -> bool:
    """Did another thread run Python code while `call` ran? The switch interval is raised so that the main
    thread gives the GIL up only when it blocks or a native call lets it go: the other thread, woken as the call
    starts, can set its flag before the call returns only if the call let the GIL go."""
    flag: list[bool] = []
    armed, go = threading.Event(), threading.Event()

    def other() -> None:
        armed.set()
        go.wait()
        flag.append(True)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    thread = threading.Thread(target=other)
    try:
        thread.start()
        armed.wait()
        go.set()
        call()
        ran = bool(flag)  # the GIL has been ours since the call returned
    finally:
        sys.setswitchinterval(interval)
        go.set()
        thread.join()
    return ran


def test_the_gil_is_released_while_the_c_code_walks_a_request() -> None:
    """Python work of about the same length, which holds the GIL, is the control."""
    data = b"".join(requests("logs", 8192, 4))

    def python_work() -> None:
        total = 0
        for i in range(2_000_000):
            total += i

    assert _ran_alongside(lambda: _fastpb.decode_logs(data))
    assert not _ran_alongside(python_work)
