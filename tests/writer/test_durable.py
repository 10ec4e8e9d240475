"""A local warehouse never names a file that is not yet on disk: after a power cut the catalog, the table's
metadata and the Parquet state would otherwise point at empty files while the WAL has forgotten the rows."""

from __future__ import annotations

import os
import pathlib
import sqlite3
from collections.abc import Callable

import pytest

from bench.workload import requests
from otlp2parquet.config import WriterSettings, load_settings
from otlp2parquet.convert import convert_traces
from otlp2parquet.writer import build_writer_factory
from otlp2parquet.writer.parquet import ParquetWriter
from tests.drained import drained


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch, state: Callable[[], object]) -> list[tuple[str, object]]:
    """Every fsync as (the synced path, what `state()` said at that moment)."""
    synced: list[tuple[str, object]] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        real(fd)
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), state()))

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_iceberg_files_are_on_disk_before_the_catalog_points_at_them(tmp_path: pathlib.Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(overrides={"writer": {"base_path": str(tmp_path)}}, environ={})
    writer = build_writer_factory(settings)("traces")

    def catalog_pointer() -> str | None:
        with sqlite3.connect(tmp_path / "catalog.db") as db:
            row = db.execute("SELECT metadata_location FROM iceberg_tables WHERE table_name = 'traces'").fetchone()
        return row[0] if row else None

    batch = convert_traces(next(requests("traces", 200, 1))).batches["traces"]
    before = catalog_pointer()
    synced = _record_fsyncs(monkeypatch, catalog_pointer)
    result = writer.write(drained("traces", [batch]), "flush-1")
    after = catalog_pointer()
    assert after is not None and after != before

    table = writer.table()
    snapshot = table.current_snapshot()
    assert snapshot is not None
    manifests = snapshot.manifests(table.io)
    referenced = [after, snapshot.manifest_list, *(m.manifest_path for m in manifests), *result.paths]
    pointer_when_synced = dict(reversed(synced))  # a path's first fsync
    for location in referenced:
        path = location.removeprefix("file://")
        assert path in pointer_when_synced, f"{path} was never fsynced"
        assert pointer_when_synced[path] != after, f"{path} was fsynced only after the catalog pointed at it"
        assert os.path.dirname(path) in pointer_when_synced, f"the directory entry of {path} was never fsynced"


def test_plain_parquet_files_are_on_disk_before_their_final_name(tmp_path: pathlib.Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    writer = ParquetWriter("traces", WriterSettings(base_path=str(tmp_path)), "w")
    batch = convert_traces(next(requests("traces", 200, 1))).batches["traces"]
    synced = _record_fsyncs(monkeypatch, lambda: sorted(str(p) for p in tmp_path.rglob("*.parquet")))
    result = writer.write(drained("traces", [batch]), "flush-1")
    assert result.paths
    for path in result.paths:
        directory, name = path.rsplit("/", 1)
        temp = [(p, visible) for p, visible in synced if p.startswith(f"{directory}/.{name}.")]
        assert temp, f"{name} was renamed into place without an fsync of its bytes"
        assert path not in temp[0][1], f"{name} was visible under its final name before its bytes were synced"
        assert any(p == directory and path in visible for p, visible in synced), \
            f"the rename of {name} was never made durable"
