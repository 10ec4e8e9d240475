"""Turning a flush into Parquet: sort order, each column's encoding, and files other engines read back."""

from __future__ import annotations

import pathlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.workload import requests
from otlp2parquet.config import WriterSettings
from otlp2parquet.convert import CONVERTERS
from otlp2parquet.schemas import TABLES, arrow_schema, arrow_schema_with_ids
from otlp2parquet.schemas.types import parquet_leaves
from otlp2parquet.writer.files import column_encodings, encode, merge_sorted, pq_encode, statistics_columns
from tests import duck
from tests.gil import ran_alongside


def _flush(table: str, count: int = 3, items: int = 200) -> list[pa.RecordBatch]:
    signal = TABLES[table].signal
    return [CONVERTERS[signal](p).batches[table] for p in requests(signal, items, count, seed=7)]


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_parquet_column_gets_the_encoding_and_statistics_its_contract_asks_for(table: str) -> None:
    data = pa.Table.from_batches(_flush(table, count=1), schema=arrow_schema(table))
    meta = pq.ParquetFile(pa.BufferReader(encode(data, TABLES[table], WriterSettings()))).metadata
    chunks = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i)
              for i in range(meta.num_columns)}
    contract = {leaf.path: leaf for leaf in parquet_leaves(TABLES[table].fields)}
    assert sorted(chunks) == sorted(contract), "pyarrow names the leaves differently: encodings would not apply"
    for path, (_, kind, unique, repeated) in contract.items():
        assert chunks[path].is_stats_set != repeated, f"{path}: statistics only outside lists and maps"
        encodings = set(chunks[path].encodings)
        if kind == "timestamptz":
            assert "DELTA_BINARY_PACKED" in encodings and "RLE_DICTIONARY" not in encodings, path
        elif unique:
            assert "RLE_DICTIONARY" not in encodings, path
            if kind == "string":
                assert "DELTA_LENGTH_BYTE_ARRAY" in encodings, path
        elif kind != "boolean":  # Parquet has no dictionary for booleans
            assert "RLE_DICTIONARY" in encodings, path


def test_spans_read_back_equal_in_duckdb_and_pyarrow(tmp_path: pathlib.Path) -> None:
    spec = TABLES["traces"]
    data = merge_sorted(spec, _flush("traces"))
    path = tmp_path / "traces.parquet"
    path.write_bytes(encode(data, spec, WriterSettings(), arrow_schema_with_ids("traces")))
    assert pq.read_table(path).to_pylist() == data.to_pylist()
    columns = "epoch_us(Timestamp), SpanId, ParentSpanId, Duration, epoch_us(EndTimestamp), " \
              "[epoch_us(e.Timestamp) for e in Events], [l.SpanId for l in Links]"
    from_duckdb = duck.connect().execute(f"SELECT {columns} FROM read_parquet('{path}')").fetchall()
    expected = [(r["Timestamp"], r["SpanId"], r["ParentSpanId"], r["Duration"], r["EndTimestamp"],
                 [e["Timestamp"] for e in r["Events"]], [link["SpanId"] for link in r["Links"]])
                for r in data.cast(pa.schema([f.with_type(_micros(f.type)) for f in data.schema])).to_pylist()]
    assert from_duckdb == expected


def _micros(t: pa.DataType) -> pa.DataType:
    """Timestamps as int64 microseconds, to compare with DuckDB's epoch_us."""
    if pa.types.is_timestamp(t):
        return pa.int64()
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_micros(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_micros(f.type)) for f in t])
    return t


@pytest.mark.parametrize("table", ["traces", "logs", "metrics_sum"])
def test_a_flush_comes_out_in_the_table_sort_order_with_every_row(table: str) -> None:
    spec, batches = TABLES[table], _flush(table)
    merged = merge_sorted(spec, batches)
    reference = pa.Table.from_batches(batches).sort_by([(c, "ascending") for c in spec.sort_columns])
    assert merged.num_rows == sum(b.num_rows for b in batches) > 0
    assert merged.to_pylist() == reference.to_pylist()


@pytest.mark.parametrize("table", sorted(TABLES))
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_encoding_columns_on_threads_writes_the_file_pyarrow_writes(table: str, threads: int) -> None:
    # Byte for byte: the same pages, encodings, statistics, field ids and footer, whatever the thread count.
    data = merge_sorted(TABLES[table], _flush(table)).cast(arrow_schema_with_ids(table))
    settings = WriterSettings(row_group_rows=data.num_rows // 3)  # several row groups, each a buffered one
    expected = pq_encode(data, TABLES[table], settings)
    assert encode(data, TABLES[table], settings, threads=threads) == expected
    assert pq.ParquetFile(pa.BufferReader(expected)).metadata.num_row_groups > 2


@pytest.mark.parametrize("threads", [1, 2])
def test_encoding_lets_the_gil_go(threads: int) -> None:
    # A flush encodes while the receiver converts: on two CPUs both must run at once.
    from otlp2parquet.writer import _encode

    spec = TABLES["traces"]
    data = merge_sorted(spec, _flush("traces", count=4, items=1000)).cast(arrow_schema_with_ids("traces"))
    dictionary, encodings = column_encodings(spec)
    statistics = statistics_columns(spec)
    stream = data.__arrow_c_stream__()
    assert ran_alongside(lambda: _encode.parquet(stream, 1, 1 << 18, dictionary, statistics, encodings, threads))


def test_a_bad_column_encoding_is_a_value_error_not_a_crash() -> None:
    from otlp2parquet.writer import _encode

    data = pa.table({"a": pa.array([1, 2, 3])})
    with pytest.raises(ValueError, match="unknown Parquet column encoding"):
        _encode.parquet(data.__arrow_c_stream__(), 1, 10, [], [], {"a": "NO_SUCH"}, 1)
    with pytest.raises(ValueError, match="Parquet encoding failed"):  # Arrow refuses delta encoding of strings
        _encode.parquet(pa.table({"s": ["x"]}).__arrow_c_stream__(), 1, 10, [], [], {"s": "DELTA_BINARY_PACKED"}, 1)
