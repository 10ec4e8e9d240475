"""Column-wise building blocks for flattening decoded OTLP into table rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp2parquet.convert._values import stringify
from otlp2parquet.schemas.types import ATTRIBUTES, arrow_type

MAP_TYPE = arrow_type(ATTRIBUTES)
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")


def field(struct: pa.Array, name: str) -> pa.Array:
    """A struct member, with the struct's own nulls applied (an unset message reads as null)."""
    index = struct.type.get_field_index(name)
    if struct.null_count == 0:
        return struct.field(index)  # zero-copy; honours the slice offset since pyarrow 15
    return pc.struct_field(struct, [index])


def explode(lists: pa.Array) -> tuple[pa.Array, pa.Array]:
    """A list column -> (its items, the row each item came from). Null lists have no items."""
    return lists.flatten(), pc.list_parent_indices(lists)


def offsets_of(lists: pa.Array) -> pa.Array:
    """Offsets (starting at 0) that rebuild `lists`' shape around the items of `lists.flatten()`."""
    if lists.null_count == 0:
        offsets = lists.offsets
        first = offsets[0].as_py()
        return pc.subtract(offsets, first) if first else offsets
    lengths = pc.fill_null(pc.list_value_length(lists), 0).cast(pa.int32())
    return pa.concat_arrays([pa.array([0], pa.int32()), pc.cumulative_sum(lengths)])


def relist(lists: pa.Array, items: pa.Array, list_type: pa.DataType) -> pa.Array:
    """Rebuild `lists`' shape (one list per row) around converted `items`."""
    return pa.ListArray.from_arrays(offsets_of(lists), items, type=list_type)


def attributes(kv_lists: pa.Array) -> pa.Array:
    """A list<KeyValue> column -> map<string, string> with ClickHouse value strings."""
    kvs = kv_lists.flatten()
    keys = field(kvs, "key")
    values = stringify(field(kvs, "value"))
    return pa.MapArray.from_arrays(offsets_of(kv_lists), keys, values, type=MAP_TYPE)


def attribute_value(maps: pa.MapArray, key: str) -> pa.Array:
    """The value of `key` in each map ('' when absent); the last occurrence wins."""
    n = len(maps)
    if n == 0:
        return pa.array([], pa.string())
    keys, values = maps.keys, maps.items
    # (list_parent_indices aborts the process on a MapArray in pyarrow 26, so derive parents from offsets)
    parents = np.repeat(np.arange(n), np.diff(maps.offsets.to_numpy()))
    hits = np.flatnonzero(pc.equal(keys, key).to_numpy(zero_copy_only=False))
    index = np.full(n, -1, dtype=np.int64)
    index[parents[hits]] = hits
    taken = values.take(pa.array(index, mask=index < 0))
    return pc.fill_null(taken, "")


def timestamps(nanos: pa.Array) -> pa.Array:
    """uint64 Unix nanoseconds -> timestamp[us, UTC] (Iceberg v2 timestamptz is microseconds)."""
    micros = pc.divide(nanos.cast(pa.uint64()), pa.scalar(1000, pa.uint64()))
    return micros.cast(pa.int64()).cast(TIMESTAMP_TYPE)


def to_int64(values: pa.Array) -> pa.Array:
    """Unsigned OTLP counters -> int64 (Iceberg has no unsigned types); uint64 above 2^63 wraps."""
    return values.cast(pa.int64(), safe=False)


def valid_id_length(ids: pa.Array, width: int) -> np.ndarray:
    """Per row: is the id empty or exactly `width` bytes (the only lengths OTLP allows)?"""
    if ids.null_count:
        ids = pc.fill_null(ids, b"")
    lengths = np.diff(_binary_buffers(ids)[0])
    return (lengths == 0) | (lengths == width)


def hex_ids(ids: pa.Array, width: int) -> pa.Array:
    """Binary ids (each 0 or `width` bytes, checked before) -> lowercase hex; empty and all-zero ids -> ''."""
    n = len(ids)
    if n == 0:
        return pa.array([], pa.string())
    if ids.null_count:
        ids = pc.fill_null(ids, b"")
    offsets, data = _binary_buffers(ids)
    nonempty = np.diff(offsets) == width
    blocks = data.reshape(-1, width)
    keep = blocks.any(axis=1)
    out_lengths = np.zeros(n, dtype=np.int32)
    out_lengths[np.flatnonzero(nonempty)[keep]] = 2 * width
    out_offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(out_lengths, out=out_offsets[1:])
    text = (blocks if keep.all() else blocks[keep]).tobytes().hex().encode()
    return pa.StringArray.from_buffers(n, pa.py_buffer(out_offsets), pa.py_buffer(text))


def _binary_buffers(ids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A binary column's offsets and its bytes back to back, honouring the slice offset."""
    if ids.type != pa.binary():
        ids = ids.cast(pa.binary())
    offsets = np.frombuffer(ids.buffers()[1], dtype=np.int32, count=len(ids) + 1, offset=ids.offset * 4)
    data = ids.buffers()[2]
    if data is None:
        return offsets, np.zeros(0, dtype=np.uint8)
    return offsets, np.frombuffer(data, dtype=np.uint8)[offsets[0]:offsets[-1]]


def enum_names(values: pa.Array, names: list[str]) -> pa.Array:
    """int32 enum -> name; numbers outside the known range stay visible as their decimal text."""
    known = pc.and_(pc.greater_equal(values, 0), pc.less(values, len(names)))
    named = pa.array(names, pa.string()).take(pc.if_else(known, values, 0))
    return pc.if_else(known, named, values.cast(pa.string()))
