"""The Iceberg writer against a real SQLite SqlCatalog: one snapshot per flush, retries without duplicates."""

from __future__ import annotations

import logging
import pathlib
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitStateUnknownException

from bench.workload import requests
from otlp2parquet.config import Settings, load_settings
from otlp2parquet.convert import convert_traces
from otlp2parquet.errors import TransientWriteError
from otlp2parquet.schemas import iceberg_schema
from otlp2parquet.writer.iceberg import FLUSH_ID, WRITER_ID, IcebergWriter
from tests.drained import drained
from tests.duck import connect


def _settings(tmp_path: pathlib.Path, **iceberg: Any) -> Settings:
    return load_settings(overrides={"writer": {"base_path": str(tmp_path)},
                                    "iceberg": {"commit_max_elapsed_s": 30, **iceberg}}, environ={})


def _catalog(settings: Settings, cls: type[SqlCatalog] = SqlCatalog, **kwargs: Any) -> SqlCatalog:
    catalog = cls(settings.iceberg.catalog_name, uri=settings.catalog_uri(), warehouse=settings.warehouse(), **kwargs)
    catalog.create_namespace_if_not_exists("otel")
    return catalog


def _spans(n: int, seed: int) -> pa.RecordBatch:
    return convert_traces(next(requests("traces", n, 1, seed=seed))).batches["traces"]


def _span_ids(catalog: SqlCatalog, table: str = "otel.traces") -> list[str]:
    return catalog.load_table(table).scan(selected_fields=("SpanId",)).to_arrow().column("SpanId").to_pylist()


def test_a_flush_is_one_snapshot_with_its_flush_id(tmp_path: pathlib.Path) -> None:
    settings = _settings(tmp_path)
    catalog = _catalog(settings)
    writer = IcebergWriter("traces", catalog, settings, "sidecar-a")
    batches = [_spans(300, 1), _spans(200, 2)]
    result = writer.write(drained("traces", batches), "flush-1")
    table = catalog.load_table("otel.traces")
    assert table.schema() == iceberg_schema("traces")
    (snapshot,) = table.snapshots()
    assert snapshot.snapshot_id == result.snapshot_id
    assert (snapshot.summary.get(FLUSH_ID), snapshot.summary.get(WRITER_ID)) == ("flush-1", "sidecar-a")
    assert (result.rows, result.committed_to_catalog) == (500, True)
    assert sorted(_span_ids(catalog)) == sorted(pa.concat_arrays([b.column("SpanId") for b in batches]).to_pylist())
    assert all(pathlib.Path(p.removeprefix("file://")).exists() for p in result.paths)
    assert result.file_size == sum(pathlib.Path(p.removeprefix("file://")).stat().st_size for p in result.paths)


def test_staged_flushes_are_invisible_until_one_commit_appends_them_all(tmp_path: pathlib.Path) -> None:
    settings = _settings(tmp_path)
    catalog = _catalog(settings)
    writer = IcebergWriter("traces", catalog, settings, "sidecar-a")
    staged = [writer.stage(drained("traces", [_spans(100, seed)], first_lsn=seed * 10), f"flush-{seed}")
              for seed in (1, 2, 3)]
    table = catalog.load_table("otel.traces")
    assert table.snapshots() == [] and _span_ids(catalog) == [], "staged files are not in the table yet"
    result = writer.commit(staged, "commit-1")
    (snapshot,) = catalog.load_table("otel.traces").snapshots()
    assert snapshot.summary.get(FLUSH_ID) == "commit-1" and snapshot.summary.get("added-data-files") == "3"
    assert result.rows == 300 and len(_span_ids(catalog)) == 300
    assert writer.committed_lsn() == 30, "the commit records the highest watermark of its flushes"


def test_files_are_sorted_partitioned_by_day_and_readable_by_duckdb(tmp_path: pathlib.Path) -> None:
    settings = _settings(tmp_path)
    catalog = _catalog(settings)
    batch = _spans(400, 3)
    day = pa.scalar(86_400_000_000, pa.int64())
    next_day = pc.add(batch.column("Timestamp").cast(pa.int64()), day).cast(batch.column("Timestamp").type)
    shifted = batch.set_column(0, batch.schema.field("Timestamp"), next_day)
    IcebergWriter("traces", catalog, settings, "w").write(drained("traces", [batch, shifted]), "f")
    table = catalog.load_table("otel.traces")
    files = table.inspect.files().to_pylist()
    assert len(files) == 2, "one file per day partition"
    for f in files:
        rows = pa.parquet.read_table(f["file_path"].removeprefix("file://"))
        keys = list(zip(rows.column("ServiceName").to_pylist(), rows.column("Timestamp").to_pylist(), strict=True))
        assert keys == sorted(keys), "rows sorted by the table's sort order"
    count, services = connect().sql(
        f"SELECT count(*), count(DISTINCT ServiceName) FROM iceberg_scan('{table.metadata_location}')").fetchone()
    assert (count, services) == (800, len(set(batch.column("ServiceName").to_pylist())))


def test_scans_prune_files_by_their_time_bounds_and_omitted_statistics_log_nothing(
        tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = _settings(tmp_path)
    catalog = _catalog(settings)
    writer = IcebergWriter("traces", catalog, settings, "w")
    early, late = _spans(300, 4), _spans(300, 5)
    two_hours = pa.scalar(2 * 3_600_000_000, pa.int64())  # same day: one partition, told apart by bounds alone
    later = pc.add(late.column("Timestamp").cast(pa.int64()), two_hours).cast(late.column("Timestamp").type)
    late = late.set_column(0, late.schema.field("Timestamp"), later)
    with caplog.at_level(logging.INFO):
        writer.write(drained("traces", [early]), "f1")
        writer.write(drained("traces", [late]), "f2")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    table = catalog.load_table("otel.traces")
    boundary = pc.max(early.column("Timestamp")).as_py()
    planned = list(table.scan(row_filter=f"Timestamp > '{boundary.isoformat()}'").plan_files())
    assert len(planned) == 1, "the early file's Timestamp bounds exclude it"
    assert table.scan(row_filter=f"Timestamp > '{boundary.isoformat()}'").to_arrow().num_rows == 300


class ConflictingCatalog(SqlCatalog):
    """A real SqlCatalog where another sidecar commits just before each of our first `conflicts` commits."""

    conflicts = 0
    competitor: IcebergWriter | None = None
    attempts = 0

    def commit_table(self, table: Any, requirements: Any, updates: Any) -> Any:
        type(self).attempts += 1
        if type(self).conflicts > 0 and type(self).competitor is not None:
            type(self).conflicts -= 1
            other = drained("traces", [_spans(10, 100 + type(self).conflicts)])
            type(self).competitor.write(other, f"other-{type(self).conflicts}")
        return super().commit_table(table, requirements, updates)


def test_commit_conflicts_are_retried_with_no_duplicate_and_no_loss(tmp_path: pathlib.Path) -> None:
    settings = _settings(tmp_path)
    plain = _catalog(settings)
    IcebergWriter("traces", plain, settings, "b").write(drained("traces", [_spans(5, 50)]), "seed")  # create the table
    # Fewer internal retries so that our tenacity layer is exercised too.
    fewer_retries = {"commit.retry.num-retries": "1", "commit.retry.min-wait-ms": "10"}
    plain.load_table("otel.traces").transaction().set_properties(fewer_retries).commit_transaction()
    ConflictingCatalog.competitor = IcebergWriter("traces", plain, settings, "b")
    ConflictingCatalog.conflicts = 4
    ConflictingCatalog.attempts = 0
    ours = IcebergWriter("traces", _catalog(settings, ConflictingCatalog), settings, "a")
    batch = _spans(100, 7)
    result = ours.write(drained("traces", [batch]), "ours")
    assert result.committed_to_catalog
    # Every attempt but the last was retried, by pyiceberg's own loop or by tenacity's, and each is counted.
    assert ConflictingCatalog.attempts == 5
    assert ours.commit_retries == 4
    assert ours.telemetry.commit_retries.labels("traces", "conflict")._value.get() == 4
    ids = _span_ids(plain)
    assert len(ids) == len(set(ids)) == 5 + 100 + 4 * 10
    assert set(batch.column("SpanId").to_pylist()) <= set(ids)
    snapshots = plain.load_table("otel.traces").snapshots()
    assert [s.summary.get(FLUSH_ID) for s in snapshots].count("ours") == 1


class LostResponseCatalog(SqlCatalog):
    """The commit lands, then the catalog answers as if it did not know (a REST 5xx after applying)."""

    lost = 0

    def commit_table(self, table: Any, requirements: Any, updates: Any) -> Any:
        response = super().commit_table(table, requirements, updates)
        if type(self).lost > 0:
            type(self).lost -= 1
            raise CommitStateUnknownException("commit state unknown (injected)")
        return response


def test_a_commit_whose_response_was_lost_is_not_appended_twice(tmp_path: pathlib.Path) -> None:
    settings = _settings(tmp_path)
    catalog = _catalog(settings, LostResponseCatalog)
    writer = IcebergWriter("traces", catalog, settings, "a")
    writer.write(drained("traces", [_spans(5, 1)]), "first")  # creates the table
    LostResponseCatalog.lost = 1
    result = writer.write(drained("traces", [_spans(50, 2)]), "second")
    assert result.committed_to_catalog and writer.commit_retries == 1
    ids = _span_ids(_catalog(settings))
    assert len(ids) == len(set(ids)) == 55
    summaries = [s.summary.get(FLUSH_ID) for s in catalog.load_table("otel.traces").snapshots()]
    assert summaries == ["first", "second"]


class BrokenCatalog(SqlCatalog):
    def commit_table(self, table: Any, requirements: Any, updates: Any) -> Any:
        raise OSError("catalog unreachable (injected)")


@pytest.mark.parametrize("warn", [True, False])
def test_a_final_commit_failure_raises_keeps_the_files_and_names_them(tmp_path: pathlib.Path, warn: bool,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    settings = _settings(tmp_path, warn_on_catalog_failure=warn, commit_max_attempts=2)
    IcebergWriter("traces", _catalog(settings), settings, "a").write(drained("traces", [_spans(5, 1)]), "create")
    writer = IcebergWriter("traces", _catalog(settings, BrokenCatalog), settings, "a")
    with pytest.raises(TransientWriteError, match="catalog unreachable"):
        writer.write(drained("traces", [_spans(20, 2)], first_lsn=2), "lost-commit")
    record = caplog.records[-1]
    assert record.levelname == ("WARNING" if warn else "ERROR")
    assert record.paths and all(p in record.getMessage() for p in record.paths)
    kept = [pathlib.Path(p.removeprefix("file://")) for p in record.paths]
    assert all(p.exists() for p in kept)
    assert sum(pa.parquet.read_table(p).num_rows for p in kept) == 20


class FlakyCatalog(SqlCatalog):
    """Commits, then fails (like a lost response) while `fail` is set, so the writer cannot tell it landed."""

    fail = False

    def commit_table(self, table: Any, requirements: Any, updates: Any) -> Any:
        response = super().commit_table(table, requirements, updates)
        if type(self).fail:
            raise OSError("connection reset (injected)")
        return response


def test_rows_returned_by_a_failed_flush_that_had_landed_are_not_written_twice(tmp_path: pathlib.Path) -> None:
    settings = _settings(tmp_path, commit_max_attempts=1)
    writer = IcebergWriter("traces", _catalog(settings, FlakyCatalog), settings, "a")
    first = drained("traces", [_spans(30, 1)], first_lsn=1)
    FlakyCatalog.fail = True
    with pytest.raises(TransientWriteError):
        writer.write(first, "f1")
    FlakyCatalog.fail = False
    assert writer.committed_lsn() == 1, "the flush did land"
    later = drained("traces", [*first.batches, _spans(20, 2)], first_lsn=1)  # the buffer gave them back, plus more
    result = writer.write(later, "f2")
    assert result.rows == 20
    ids = _span_ids(_catalog(settings))
    assert len(ids) == len(set(ids)) == 50
    assert writer.committed_lsn() == 2


def test_committed_lsn_is_per_writer_id(tmp_path: pathlib.Path) -> None:
    settings = _settings(tmp_path)
    catalog = _catalog(settings)
    assert IcebergWriter("traces", catalog, settings, "a").committed_lsn() == 0
    IcebergWriter("traces", catalog, settings, "a").write(drained("traces", [_spans(5, 1)], first_lsn=40), "x")
    IcebergWriter("traces", catalog, settings, "b").write(drained("traces", [_spans(5, 2)], first_lsn=7), "y")
    assert IcebergWriter("traces", catalog, settings, "a").committed_lsn() == 40
    assert IcebergWriter("traces", catalog, settings, "b").committed_lsn() == 7
