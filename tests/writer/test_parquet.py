"""Plain Parquet mode: the seed's Hive layout, rows split by their own event hour, content-hash names."""

from __future__ import annotations

import json
import pathlib

import pyarrow.parquet as pq
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from bench.workload import requests
from otlp2parquet.config import WriterSettings
from otlp2parquet.convert import convert_logs, convert_metrics
from otlp2parquet.writer.parquet import ParquetWriter, service_segment
from tests.drained import drained
from tests.otlp import any_value, kv, ns


def _logs() -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    layout = {"checkout": ["2026-01-01T10:59:59", "2026-01-01T11:00:00"], "a/b": ["2026-01-01T10:00:00"]}
    for service, times in layout.items():
        records = req.resource_logs.add(resource=Resource(attributes=[kv("service.name", service)])).scope_logs.add()
        for t in times:
            records.log_records.add(time_unix_nano=ns(t), body=any_value(f"{service} {t}"))
    return req


def test_layout_splits_by_service_and_event_hour(tmp_path: pathlib.Path) -> None:
    batch = convert_logs(_logs().SerializeToString()).batches["logs"]
    result = ParquetWriter("logs", WriterSettings(base_path=str(tmp_path)), "w").write(drained("logs", [batch]), "f1")
    relative = sorted(str(pathlib.Path(p).relative_to(tmp_path).parent) for p in result.paths)
    assert relative == ["logs/a_b/year=2026/month=01/day=01/hour=10",
                        "logs/checkout/year=2026/month=01/day=01/hour=10",
                        "logs/checkout/year=2026/month=01/day=01/hour=11"]
    assert (result.rows, result.committed_to_catalog) == (3, False)
    bodies = sorted(b for p in result.paths for b in pq.read_table(p).column("Body").to_pylist())
    assert bodies == ["a/b 2026-01-01T10:00:00", "checkout 2026-01-01T10:59:59", "checkout 2026-01-01T11:00:00"]
    names = [pathlib.Path(p).name for p in result.paths]
    assert all(name.endswith(".parquet") and name.split("-")[0].isdigit() for name in names)
    assert pq.ParquetFile(result.paths[0]).metadata.row_group(0).column(0).compression == "ZSTD"
    assert pq.ParquetFile(result.paths[0]).metadata.row_group(0).column(0).statistics is not None


def test_metric_tables_get_their_type_segment_and_service_is_optional(tmp_path: pathlib.Path) -> None:
    batches = convert_metrics(next(requests("metrics", 50, 1))).batches
    settings = WriterSettings(base_path=str(tmp_path), partition_by_service=False)
    result = ParquetWriter("metrics_histogram", settings, "w").write(
        drained("metrics_histogram", [batches["metrics_histogram"]]), "f1")
    parts = pathlib.Path(result.paths[0]).relative_to(tmp_path).parts
    assert parts[:3] == ("metrics", "histogram", "year=2026")


def test_a_retried_flush_writes_nothing_twice(tmp_path: pathlib.Path) -> None:
    batch = convert_logs(_logs().SerializeToString()).batches["logs"]
    writer = ParquetWriter("logs", WriterSettings(base_path=str(tmp_path)), "w")
    first = writer.write(drained("logs", [batch]), "attempt-1")
    second = writer.write(drained("logs", [batch]), "attempt-2")  # same LSN: already committed
    assert (first.rows, second.rows) == (3, 0)
    assert len(list(tmp_path.rglob("*.parquet"))) == 3
    assert not list(tmp_path.rglob("*.tmp"))
    assert writer.committed_lsn() == 1


@pytest.mark.parametrize("files_written", [0, 1, 3])
def test_a_flush_cut_short_is_settled_at_the_next_start(tmp_path: pathlib.Path, files_written: int) -> None:
    batch = convert_logs(_logs().SerializeToString()).batches["logs"]
    settings = WriterSettings(base_path=str(tmp_path))
    ParquetWriter("logs", settings, "w").write(drained("logs", [batch]), "done")
    paths = sorted(tmp_path.rglob("*.parquet"))
    # Recreate the moment of a crash: the intent is written, then only some of its files.
    intent = tmp_path / "_otlp2parquet" / "logs.w.intent.json"
    intent.write_text(json.dumps({"lsn": 1, "paths": [str(p) for p in paths]}))
    (tmp_path / "_otlp2parquet" / "logs.w.committed.json").unlink()
    for p in paths[files_written:]:
        p.unlink()
    committed = ParquetWriter("logs", settings, "w").committed_lsn()
    if files_written == len(paths):
        assert committed == 1 and sorted(tmp_path.rglob("*.parquet")) == paths
    else:
        assert committed == 0 and not list(tmp_path.rglob("*.parquet")), "partial flush removed, to be replayed"
    assert not intent.exists()


def test_service_segment_is_path_safe() -> None:
    assert service_segment("checkout") == "checkout"
    assert service_segment("../etc") == ".._etc"
    assert service_segment("") == "unknown"
    assert service_segment("..") == "unknown"
