"""AnyValue -> string, exactly as the ClickHouse exporter stores attribute values (pcommon `AsString`).

The common kinds (string, bool, int, finite double) are done column-wise in Arrow; bytes, arrays, kvlists and
doubles that Arrow formats differently from Go go through small Python functions for just those rows.
"""

from __future__ import annotations

import base64
import json
import math
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1 import common_pb2

NAN_TEXT = "json: unsupported value: NaN"
POS_INF_TEXT = "json: unsupported value: +Inf"
NEG_INF_TEXT = "json: unsupported value: -Inf"


class _Unsupported(Exception):
    """A NaN or infinity inside an array or kvlist: Go's json.Marshal fails and the value becomes ''."""


def format_double(x: float) -> str:
    """Go's `float64AsString`: ES6 number formatting, with an error text for NaN and infinities."""
    if math.isnan(x):
        return NAN_TEXT
    if math.isinf(x):
        return POS_INF_TEXT if x > 0 else NEG_INF_TEXT
    return _json_number(x)


def _json_number(x: float) -> str:
    a = abs(x)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        text = repr(x)  # shortest round-trip digits, always in exponent form at these magnitudes
        if "e-0" in text:
            text = text.replace("e-0", "e-")
        return text
    text = format(Decimal(repr(x)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


_HTML_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                               "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _json_string(s: str) -> str:
    """Go's encoding/json string form: HTML-safe escapes, non-ASCII kept as UTF-8."""
    return json.dumps(s, ensure_ascii=False).translate(_HTML_ESCAPES)


def _json(value: common_pb2.AnyValue) -> str:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return _json_string(value.string_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        if not math.isfinite(value.double_value):
            raise _Unsupported
        return _json_number(value.double_value)
    if kind == "bytes_value":
        return '"' + base64.b64encode(value.bytes_value).decode() + '"'
    if kind == "array_value":
        return "[" + ",".join(_json(v) for v in value.array_value.values) + "]"
    if kind == "kvlist_value":
        return _json_object(value.kvlist_value.values)
    return "null"


def _json_object(kvs: list[common_pb2.KeyValue]) -> str:
    latest = {kv.key: kv.value for kv in kvs}  # duplicate keys: the last one wins, as in a Go map
    return "{" + ",".join(_json_string(k) + ":" + _json(latest[k]) for k in sorted(latest)) + "}"


def _any_value(item: bytes | dict | None) -> common_pb2.AnyValue:
    """ptars stops decoding where AnyValue recurses, at a depth that depends on where the value sits: below
    that point an item is serialized bytes, above it a dict of decoded fields. Accept both."""
    if item is None:
        return common_pb2.AnyValue()
    if isinstance(item, bytes):
        return common_pb2.AnyValue.FromString(item)
    for name in ("string_value", "bool_value", "int_value", "double_value", "bytes_value"):
        if item.get(name) is not None:
            return common_pb2.AnyValue(**{name: item[name]})
    if item.get("array_value") is not None:
        values = [_any_value(v) for v in item["array_value"]["values"]]
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=values))
    if item.get("kvlist_value") is not None:
        pairs = [_key_value(v) for v in item["kvlist_value"]["values"]]
        return common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=pairs))
    return common_pb2.AnyValue()


def _key_value(item: bytes | dict) -> common_pb2.KeyValue:
    if isinstance(item, bytes):
        return common_pb2.KeyValue.FromString(item)
    return common_pb2.KeyValue(key=item["key"], value=_any_value(item["value"]))


def _nested_text(kind: str, items: list[bytes | dict]) -> str:
    """An array or kvlist as Go's JSON text; '' where Go's json.Marshal fails (NaN, infinities)."""
    try:
        if kind == "array":
            return "[" + ",".join(_json(_any_value(i)) for i in items) + "]"
        return _json_object([_key_value(i) for i in items])
    except (_Unsupported, DecodeError, RecursionError):
        return ""


def _scatter(n: int, rows: np.ndarray, texts: list[str]) -> pa.Array:
    out: list[str | None] = [None] * n
    for row, text in zip(rows.tolist(), texts, strict=True):
        out[row] = text
    return pa.array(out, pa.string())


def _doubles_text(doubles: pa.Array) -> pa.Array:
    text = doubles.cast(pa.string())
    # Arrow agrees with Go except for 1e10 <= |x| < 1e21 (Arrow: 1e+20, Go: 100000000000000000000) and
    # non-finite values (Go: an error text); only those rows are formatted in Python.
    values = np.abs(doubles.to_numpy(zero_copy_only=False))
    with np.errstate(invalid="ignore"):
        odd = ~np.isfinite(values) | ((values >= 1e10) & (values < 1e21))
    if doubles.null_count:
        odd &= pc.is_valid(doubles).to_numpy(zero_copy_only=False)
    if not odd.any():
        return text
    rows = np.flatnonzero(odd)
    fixed = _scatter(len(doubles), rows, [format_double(v) for v in doubles.take(pa.array(rows)).to_pylist()])
    return pc.coalesce(fixed, text)


def stringify(values: pa.StructArray) -> pa.Array:
    """A ptars AnyValue struct column -> ClickHouse attribute strings ('' for an empty value)."""
    n = len(values)
    if n == 0:
        return pa.array([], pa.string())
    children = dict(zip((f.name for f in values.type), values.flatten(), strict=True))  # one call, no copies
    col = [children[name] for name in (
        "string_value", "bool_value", "int_value", "double_value", "bytes_value", "array_value", "kvlist_value")]
    parts: list[pa.Array] = [col[0]]
    if col[1].null_count < n:
        parts.append(col[1].cast(pa.string()))
    if col[2].null_count < n:
        parts.append(col[2].cast(pa.string()))
    if col[3].null_count < n:
        parts.append(_doubles_text(col[3]))
    if col[4].null_count < n:
        rows = np.flatnonzero(pc.is_valid(col[4]).to_numpy(zero_copy_only=False))
        raw = col[4].take(pa.array(rows)).to_pylist()
        parts.append(_scatter(n, rows, [base64.b64encode(b).decode() for b in raw]))
    for kind, nested in (("array", col[5]), ("kvlist", col[6])):
        if nested.null_count < n:
            rows = np.flatnonzero(pc.is_valid(nested).to_numpy(zero_copy_only=False))
            items = pc.struct_field(nested.take(pa.array(rows)), [0]).to_pylist()
            parts.append(_scatter(n, rows, [_nested_text(kind, i or []) for i in items]))
    parts.append(pa.scalar("", pa.string()))
    return pc.coalesce(*parts) if len(parts) > 1 else parts[0]
