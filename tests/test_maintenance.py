"""Table maintenance against a real SQLite catalog: expiry, metadata properties, retention, orphan files."""

from __future__ import annotations

import datetime as dt
import pathlib
import time
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from bench.workload import requests
from otlp2parquet.config import Settings, load_settings
from otlp2parquet.convert import convert_traces
from otlp2parquet.errors import TransientWriteError
from otlp2parquet.maintenance import (
    Plan,
    apply_retention,
    compact,
    ensure_metadata_cleanup,
    expire_snapshots,
    maintain,
    parse_duration,
    referenced_files,
    remove_orphan_files,
)
from otlp2parquet.writer.iceberg import IcebergWriter
from tests.drained import drained

HOUR = dt.timedelta(hours=1)


def _settings(tmp_path: pathlib.Path) -> Settings:
    return load_settings(overrides={"writer": {"base_path": str(tmp_path)}}, environ={})


def _catalog(settings: Settings, cls: type[SqlCatalog] = SqlCatalog) -> SqlCatalog:
    catalog = cls(settings.iceberg.catalog_name, uri=settings.catalog_uri(), warehouse=settings.warehouse())
    catalog.create_namespace_if_not_exists("otel")
    return catalog


def _spans(seed: int, n: int = 20) -> pa.RecordBatch:
    return convert_traces(next(requests("traces", n, 1, seed=seed))).batches["traces"]


def _rows(catalog: SqlCatalog) -> list[str]:
    return sorted(catalog.load_table("otel.traces").scan().to_arrow().column("SpanId").to_pylist())


def test_durations() -> None:
    assert parse_duration("90s") == dt.timedelta(seconds=90)
    assert parse_duration("7d") == dt.timedelta(days=7)
    with pytest.raises(ValueError, match="duration"):
        parse_duration("7 days")


def test_expiry_keeps_the_newest_n_and_every_writers_newest_snapshot(tmp_path: pathlib.Path) -> None:
    settings = _settings(tmp_path)
    catalog = _catalog(settings)
    a = IcebergWriter("traces", catalog, settings, "sidecar-a")
    b = IcebergWriter("traces", catalog, settings, "sidecar-b")
    b.write(drained("traces", [_spans(0)], first_lsn=77), "b-only-once")  # b then goes quiet
    for lsn in range(1, 9):
        a.write(drained("traces", [_spans(lsn)], first_lsn=lsn), f"a-{lsn}")
    table = catalog.load_table("otel.traces")
    rows_before = _rows(catalog)
    dry = expire_snapshots(table, dt.timedelta(0), keep_last=3, dry_run=True)
    assert dry.snapshots == 9 - 3 - 1 and len(catalog.load_table("otel.traces").snapshots()) == 9
    done = expire_snapshots(table, dt.timedelta(0), keep_last=3, dry_run=False)
    assert done.snapshots == 5
    remaining = catalog.load_table("otel.traces").snapshots()
    assert len(remaining) == 4
    assert a.committed_lsn() == 8 and b.committed_lsn() == 77, "recovery still finds each sidecar's watermark"
    assert _rows(catalog) == rows_before, "expiry removes history, never current rows"
    assert expire_snapshots(table, HOUR, keep_last=0, dry_run=False).snapshots == 0, "nothing is an hour old"


def test_metadata_cleanup_properties_are_set_on_old_tables(tmp_path: pathlib.Path) -> None:
    settings = _settings(tmp_path)
    catalog = _catalog(settings)
    IcebergWriter("traces", catalog, settings, "a").write(drained("traces", [_spans(1)]), "f")
    table = catalog.load_table("otel.traces")
    table.transaction().remove_properties("write.metadata.delete-after-commit.enabled").commit_transaction()
    report = ensure_metadata_cleanup(catalog.load_table("otel.traces"), dry_run=False)
    assert report.details == ["write.metadata.delete-after-commit.enabled=true"]
    assert catalog.load_table("otel.traces").properties["write.metadata.delete-after-commit.enabled"] == "true"


def test_retention_deletes_only_rows_older_than_the_age(tmp_path: pathlib.Path) -> None:
    settings = _settings(tmp_path)
    catalog = _catalog(settings)
    recent = _spans(1)
    now_us = int(time.time() * 1e6)
    times = pa.array([now_us - i * 1000 for i in range(recent.num_rows)], pa.int64()).cast(recent.column(0).type)
    recent = recent.set_column(0, recent.schema.field("Timestamp"), times)
    old = _spans(2)  # the workload's 2026-01-01 timestamps
    IcebergWriter("traces", catalog, settings, "a").write(drained("traces", [old, recent]), "f")
    table = catalog.load_table("otel.traces")
    dry = apply_retention(table, "Timestamp", dt.timedelta(days=1), dry_run=True)
    assert dry.rows == old.num_rows and len(_rows(catalog)) == old.num_rows + recent.num_rows
    apply_retention(table, "Timestamp", dt.timedelta(days=1), dry_run=False)
    assert _rows(catalog) == sorted(recent.column("SpanId").to_pylist())


class BrokenCatalog(SqlCatalog):
    def commit_table(self, table: Any, requirements: Any, updates: Any) -> Any:
        raise OSError("catalog unreachable (injected)")


def test_orphan_files_older_than_the_horizon_are_removed(tmp_path: pathlib.Path) -> None:
    settings = load_settings(overrides={"writer": {"base_path": str(tmp_path)}, "iceberg": {"commit_max_attempts": 1}},
                             environ={})
    catalog = _catalog(settings)
    IcebergWriter("traces", catalog, settings, "a").write(drained("traces", [_spans(1)]), "kept")
    with pytest.raises(TransientWriteError):  # leaves written but uncommitted data files behind
        IcebergWriter("traces", _catalog(settings, BrokenCatalog), settings, "a").write(
            drained("traces", [_spans(2)], first_lsn=2), "orphaned")
    table = catalog.load_table("otel.traces")
    orphans = [p for p in (tmp_path / "warehouse").rglob("orphaned-*.parquet")]
    assert orphans
    young = remove_orphan_files(table, HOUR, dry_run=False)
    assert young.files == 0 and all(p.exists() for p in orphans), "too young: may be a commit in progress"
    dry = remove_orphan_files(table, dt.timedelta(0), dry_run=True)
    assert dry.files >= len(orphans) and all(p.exists() for p in orphans)
    before = _rows(catalog)
    done = remove_orphan_files(table, dt.timedelta(0), dry_run=False)
    assert done.files == dry.files and not any(p.exists() for p in orphans)
    assert _rows(catalog) == before
    assert all(pathlib.Path(p).exists() for p in referenced_files(catalog.load_table("otel.traces")))


def test_maintain_skips_tables_that_do_not_exist_yet(tmp_path: pathlib.Path) -> None:
    assert maintain(lambda name: None, Plan(), ["traces", "logs"]) == []


def _old_day_flushes(settings: Settings, catalog: SqlCatalog, count: int) -> list[str]:
    writer = IcebergWriter("traces", catalog, settings, "a")
    ids: list[str] = []
    for i in range(count):  # the workload's spans all fall on 2026-01-01
        batch = _spans(100 + i, 30)
        writer.write(drained("traces", [batch], first_lsn=i + 1), f"small-{i}")
        ids += batch.column("SpanId").to_pylist()
    return ids


def _data_files(catalog: SqlCatalog) -> list[str]:
    return catalog.load_table("otel.traces").inspect.files().column("file_path").to_pylist()


def test_compaction_merges_the_small_files_of_a_cold_partition(tmp_path: pathlib.Path) -> None:
    settings = _settings(tmp_path)
    catalog = _catalog(settings)
    ids = _old_day_flushes(settings, catalog, 5)
    assert len(_data_files(catalog)) == 5
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)  # nothing added "recently" any more
    table = catalog.load_table("otel.traces")
    hot = compact(table, "traces", settings, dt.timedelta(days=2), 128 * 2**20, dry_run=False)
    assert hot.files == 0, "files were just added: the partition may still receive data"
    dry = compact(table, "traces", settings, dt.timedelta(days=2), 128 * 2**20, dry_run=True, now=later)
    assert (dry.files, dry.rows) == (5, 150) and len(_data_files(catalog)) == 5
    done = compact(table, "traces", settings, dt.timedelta(days=2), 128 * 2**20, dry_run=False, now=later)
    assert done.files == 5
    (merged,) = _data_files(catalog)
    assert _rows(catalog) == sorted(ids)
    rows = pa.parquet.read_table(merged.removeprefix("file://"))
    keys = list(zip(rows.column("ServiceName").to_pylist(), rows.column("Timestamp").to_pylist(), strict=True))
    assert keys == sorted(keys)


def test_compaction_keeps_a_file_appended_while_it_runs(tmp_path: pathlib.Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import otlp2parquet.writer.iceberg as iceberg

    settings = _settings(tmp_path)
    catalog = _catalog(settings)
    ids = _old_day_flushes(settings, catalog, 3)
    late = _spans(999, 10)
    real_write = iceberg.write_data_files

    appended: list[bool] = []

    def write_then_a_sidecar_appends(*args: Any, **kwargs: Any) -> Any:
        files = real_write(*args, **kwargs)
        if not appended:  # once, between compaction's read and its commit (the sidecar's own write comes here too)
            appended.append(True)
            IcebergWriter("traces", _catalog(settings), settings, "b").write(drained("traces", [late], 50), "late")
        return files

    monkeypatch.setattr(iceberg, "write_data_files", write_then_a_sidecar_appends)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    compact(catalog.load_table("otel.traces"), "traces", settings, dt.timedelta(days=2), 128 * 2**20, False, later)
    assert _rows(catalog) == sorted(ids + late.column("SpanId").to_pylist())
    assert len(_data_files(catalog)) == 2, "the three small files merged, the late one kept"
