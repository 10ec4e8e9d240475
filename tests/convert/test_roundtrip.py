"""Every table's batch survives Parquet (zstd) and reads back equal with pyarrow and with DuckDB."""

from __future__ import annotations

import math
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.workload import requests
from otlp2parquet.convert import CONVERTERS
from otlp2parquet.schemas import TABLES
from tests.duck import connect


def _all_batches() -> dict[str, pa.RecordBatch]:
    batches: dict[str, pa.RecordBatch] = {}
    for signal in ("traces", "logs", "metrics"):
        batches.update(CONVERTERS[signal](next(requests(signal, 300, 1, seed=3))).batches)
    return batches


BATCHES = _all_batches()


def _normalise(value: object) -> object:
    """NaN != NaN, and DuckDB returns maps as {key: [...], value: [...]} dicts or key/value pair lists."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict) and set(value) == {"key", "value"}:
        return [(k, _normalise(v)) for k, v in zip(value["key"], value["value"], strict=True)]
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def test_workload_touches_every_table() -> None:
    assert sorted(BATCHES) == sorted(TABLES)


@pytest.mark.parametrize("table", sorted(TABLES))
def test_parquet_round_trip_with_pyarrow_and_duckdb(table: str, tmp_path: pathlib.Path) -> None:
    batch = BATCHES[table]
    path = tmp_path / f"{table}.parquet"
    pq.write_table(pa.Table.from_batches([batch]), path, compression="zstd")
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"

    back = pq.read_table(path)
    assert back.schema == batch.schema
    assert _normalise(back.to_pylist()) == _normalise(batch.to_pylist())

    con = connect()
    rows = con.sql(f"SELECT * FROM read_parquet('{path}')").arrow().read_all().to_pylist()
    assert len(rows) == batch.num_rows
    assert _normalise(rows) == _normalise(batch.to_pylist())
