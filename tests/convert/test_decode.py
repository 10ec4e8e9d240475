"""Undecodable bytes raise ConversionError; invalid UTF-8 is repaired rather than losing the request; joined
requests convert as each alone would; converted batches do not keep the decoded request alive."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable

import pyarrow as pa
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.workload import requests
from otlp2parquet.convert import CONVERTERS, convert_traces, join
from otlp2parquet.errors import ConversionError
from tests.otlp import kv


def _request_with_marker() -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", "MARKER-svc"))
    rs.scope_spans.add().spans.add(span_id=b"\x01" * 8, name="MARKER-span",
                                   attributes=[kv("MARKER-key", "MARKER-value")])
    return req.SerializeToString()


def test_invalid_utf8_strings_are_replaced_and_reported() -> None:
    # Same byte length, so the protobuf framing stays valid: "MARKER" -> b"\xffARKER" (not UTF-8).
    data = _request_with_marker().replace(b"MARKER", b"\xffARKER")
    result = convert_traces(data)
    row = result.batches["traces"].to_pylist()[0]
    assert row["ServiceName"] == "\ufffdARKER-svc"
    assert row["SpanName"] == "\ufffdARKER-span"
    assert row["SpanAttributes"] == [("\ufffdARKER-key", "\ufffdARKER-value")]
    assert (result.accepted, result.rejected) == (1, 0)
    assert result.warnings == ["4 string fields had invalid UTF-8 and were stored with U+FFFD replacements"]


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
@pytest.mark.parametrize("data", [b"\x0a\xff\xff\xff", b"\x0a\x10short", b"\xff" * 20, b"\x0f"],
                         ids=["bad-varint", "truncated", "junk", "bad-wire-type"])
def test_undecodable_bytes_raise_conversion_error(signal: str, data: bytes) -> None:
    with pytest.raises(ConversionError, match=f"cannot decode {signal} request|wire type|truncated"):
        CONVERTERS[signal](data)


def test_truncated_real_request_is_rejected() -> None:
    data = _request_with_marker()
    with pytest.raises(ConversionError):
        convert_traces(data[:-5])


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
def test_joined_requests_convert_to_each_request_s_rows_in_order(signal: str) -> None:
    payloads = list(requests(signal, 40, 3, seed=7))
    joined = join(payloads)
    assert joined is not None
    together = CONVERTERS[signal](joined)
    alone = [CONVERTERS[signal](p) for p in payloads]
    assert together.accepted == sum(r.accepted for r in alone) and together.rejected == 0
    assert set(together.batches) == {t for r in alone for t in r.batches}
    for table, batch in together.batches.items():
        expected = pa.Table.from_batches([r.batches[table] for r in alone if table in r.batches])
        assert pa.Table.from_batches([batch]).equals(expected), table


@pytest.mark.parametrize("broken", [
    lambda good: good[:-3],  # the last field cut short would read on into the next request
    lambda good: good + b"\x0b",  # a group (wire type 3)
    lambda good: b"\x0a\xff\xff\xff garbage",
    lambda good: good + b"\x00",  # field number 0
])
def test_a_request_not_cleanly_framed_is_not_joined(broken: Callable[[bytes], bytes]) -> None:
    good = next(requests("traces", 5, 1, seed=8))
    assert join([broken(good), good]) is None
    assert join([good, broken(good)]) is None


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


def _in_use() -> int:
    """Bytes handed out and not had back: by the C heap (ptars' Rust buffers, and Arrow's system pool), and by
    Arrow's own pool when it is another one."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallinfo2.restype = _MallInfo2
    gc.collect()
    info = libc.mallinfo2()
    arrow = 0 if pa.default_memory_pool().backend_name == "system" else pa.total_allocated_bytes()
    return info.uordblks + info.hblkhd + arrow


@pytest.mark.parametrize("signal_name", ["traces", "logs", "metrics"])
def test_converted_batches_hold_only_the_memory_the_buffer_counts(signal_name: str) -> None:
    # A column left pointing into the decoded request kept all of it alive (pyarrow frees an imported array as
    # one), so buffered batches held 1.6-2.0x the bytes the memory budget counted.
    groups = [join(list(requests(signal_name, 1000, 4, seed=s))) for s in range(6)]
    CONVERTERS[signal_name](groups[0])
    before = _in_use()
    held = [CONVERTERS[signal_name](g).batches for g in groups]
    grown = _in_use() - before
    counted = sum(b.nbytes for batches in held for b in batches.values())
    assert counted > 10 * 2**20
    assert grown < 1.15 * counted, (grown, counted)


@pytest.mark.parametrize("signal_name", ["traces", "logs", "metrics"])
def test_converting_again_and_again_holds_no_more_memory(signal_name: str) -> None:
    # The native walk hands its buffers to Python as they are (no copy), and each is freed with the last array
    # that uses it: converted and dropped 40 times, a request must leave the heap where it was.
    request = join(list(requests(signal_name, 1000, 2, seed=3)))
    once = CONVERTERS[signal_name](request)
    assert once.accepted == 2000
    one_result = sum(b.get_total_buffer_size() for b in once.batches.values())
    del once
    before = _in_use()
    for _ in range(40):
        CONVERTERS[signal_name](request)
    assert _in_use() - before < one_result, (_in_use() - before, one_result)
