"""AnyValue stringification follows the ClickHouse exporter (pcommon `AsString`) for every kind."""

from __future__ import annotations

import math
import random

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otlp2parquet.convert import convert_logs
from otlp2parquet.convert._values import format_double
from tests.otlp import any_value, kv

CASES = [
    (None, ""),
    ("plain text", "plain text"),
    ("", ""),
    ("héllo ✓", "héllo ✓"),
    (True, "true"),
    (False, "false"),
    (-42, "-42"),
    (2**63 - 1, "9223372036854775807"),
    (3.0, "3"),
    (0.5, "0.5"),
    (-0.0, "-0"),
    (1e-7, "1e-7"),
    (1.5e-7, "1.5e-7"),
    (1e-6, "0.000001"),
    (1e20, "100000000000000000000"),
    (123456789012.5, "123456789012.5"),
    (1e21, "1e+21"),
    (0.1 + 0.2, "0.30000000000000004"),
    (math.nan, "json: unsupported value: NaN"),
    (math.inf, "json: unsupported value: +Inf"),
    (-math.inf, "json: unsupported value: -Inf"),
    (b"\x00\xff", "AP8="),
    (b"", ""),
    ([1, "a", True, 2.5, None, b"\x00\xff", 1e21], '[1,"a",true,2.5,null,"AP8=",1e+21]'),
    ([], "[]"),
    ({"b": 1, "a": {"z": [3.0]}}, '{"a":{"z":[3]},"b":1}'),
    ({"a<b": "x&y>", "q": 'say "hi"\n'}, '{"a\\u003cb":"x\\u0026y\\u003e","q":"say \\"hi\\"\\n"}'),
    ({"n": [1.0, math.nan]}, ""),  # Go's json.Marshal fails on NaN: the whole value is ''
    ({}, "{}"),
]


def _through_converter(values: list[object]) -> tuple[list[str], list[str]]:
    """Stringify each value both as a log attribute and as a log body (ptars decodes them to different depths)."""
    req = ExportLogsServiceRequest()
    records = req.resource_logs.add().scope_logs.add().log_records
    for value in values:
        records.add(body=any_value(value), attributes=[kv("k", value)])
    batch = convert_logs(req.SerializeToString()).batches["logs"]
    attrs = [dict(pairs)["k"] for pairs in batch.column("LogAttributes").to_pylist()]
    return attrs, batch.column("Body").to_pylist()


@pytest.mark.parametrize(("value", "expected"), CASES, ids=[repr(c[0])[:40] for c in CASES])
def test_value_stringifies_like_clickhouse(value: object, expected: str) -> None:
    attrs, bodies = _through_converter([value])
    assert attrs == [expected]
    assert bodies == [expected]


def test_deeply_nested_values_stringify_at_every_depth() -> None:
    value: object = "leaf"
    for depth in range(12):
        value = [value] if depth % 2 else {"k": value}
    attrs, bodies = _through_converter([value])
    expected = '[{"k":[{"k":[{"k":[{"k":[{"k":[{"k":"leaf"}]}]}]}]}]}]'
    assert attrs == [expected] and bodies == [expected]


def test_vectorised_double_path_agrees_with_reference_formatter() -> None:
    """Arrow formats most doubles; the rows it would format unlike Go must be caught and redone."""
    rng = random.Random(7)
    values = [rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30) for _ in range(3000)] + [1e10, 1e15, 9.99e20]
    attrs, _ = _through_converter(values)
    assert attrs == [format_double(v) for v in values]
