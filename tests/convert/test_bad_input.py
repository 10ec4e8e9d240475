"""Bad input: each kind gets a clear answer, and nothing else in the request is lost.

The property tests fuzz the converters with random and mutated requests; `make test` runs a bounded budget,
`HYPOTHESIS_PROFILE=long pytest tests/convert/test_bad_input.py` a long one.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.workload import requests
from otlp2parquet.convert import CONVERTERS, convert_logs, convert_traces
from otlp2parquet.errors import ConversionError
from tests.otlp import any_value, kv

SAMPLES = {signal: next(requests(signal, 12, 1, seed=21)) for signal in CONVERTERS}
ITEMS = {"traces": 12, "logs": 12, "metrics": 12}


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field, encoded by hand (the protobuf API refuses such deep nesting)."""
    def varint(n: int) -> bytes:
        out = bytearray()
        while n >= 0x80:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        return bytes(out + bytes([n]))
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def _deep(depth: int) -> bytes:
    """An AnyValue nested `depth` levels, alternating kvlist {"k": ...} and array [...]."""
    value = _field(1, b"leaf")  # AnyValue.string_value
    for i in range(depth):
        array = _field(5, _field(1, value))  # AnyValue.array_value.values[0]
        kvlist = _field(6, _field(1, _field(1, b"k") + _field(2, value)))  # AnyValue.kvlist_value.values[0]
        value = array if i % 2 else kvlist
    return value


def test_deeply_nested_values_do_not_crash_and_keep_the_record() -> None:
    deep = _deep(300)
    body, deep_attribute = _field(5, deep), _field(6, _field(1, b"deep") + _field(2, deep))
    record = body + deep_attribute + _field(6, kv("ok", 1).SerializeToString())
    neighbour = ExportLogsServiceRequest()
    neighbour.resource_logs.add().scope_logs.add().log_records.add(body=any_value("neighbour"))
    request = _field(1, _field(2, _field(2, record))) + neighbour.SerializeToString()
    result = convert_logs(request)
    batch = result.batches["logs"]
    assert (result.accepted, result.rejected) == (2, 0)
    assert batch.column("Body").to_pylist()[1] == "neighbour"
    attrs = dict(batch.column("LogAttributes").to_pylist()[0])
    assert attrs["ok"] == "1"
    assert attrs["deep"] == batch.column("Body").to_pylist()[0]
    assert attrs["deep"] == "", "beyond the protobuf decoder's depth limit: stored as '', the record kept"


def test_a_huge_attribute_map_is_kept_whole() -> None:
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add(span_id=b"\x01" * 8)
    span.attributes.extend(kv(f"key.{i}", i) for i in range(50_000))
    batch = convert_traces(req.SerializeToString()).batches["traces"]
    attrs = batch.column("SpanAttributes").to_pylist()[0]
    assert len(attrs) == 50_000 and attrs[49_999] == ("key.49999", "49999")


@given(st.binary(max_size=2000))
def test_random_bytes_either_convert_or_raise_conversion_error(data: bytes) -> None:
    for convert in CONVERTERS.values():
        try:
            result = convert(data)
        except ConversionError:
            continue
        assert result.accepted >= 0 and result.rejected >= 0
        assert sum(b.num_rows for b in result.batches.values()) == result.accepted


@given(st.sampled_from(sorted(CONVERTERS)), st.data())
def test_mutated_requests_either_convert_or_raise_conversion_error(signal: str, data: st.DataObject) -> None:
    payload = bytearray(SAMPLES[signal])
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(payload) - 1))
        payload[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(payload)))
    try:
        result = CONVERTERS[signal](bytes(payload[:cut]) if data.draw(st.booleans()) else bytes(payload))
    except ConversionError:
        return
    assert sum(b.num_rows for b in result.batches.values()) == result.accepted
    assert result.accepted + result.rejected <= ITEMS[signal] * 4  # a mutation can add items, within reason


def test_the_unmutated_samples_convert_whole() -> None:
    for signal, payload in SAMPLES.items():
        result = CONVERTERS[signal](payload)
        assert (result.accepted, result.rejected) == (ITEMS[signal], 0)
