"""Service start-up: recovery replays the WAL while the flush threads already run."""

from __future__ import annotations

import pathlib
import threading
import time

import pytest

import otlp2parquet.service as service_module
from bench.workload import requests
from otlp2parquet.buffer import Drained
from otlp2parquet.config import Settings
from otlp2parquet.service import Service
from otlp2parquet.wal import WriteAheadLog
from otlp2parquet.writer import Staged
from tests.writers import RecordingWriter


class _Watermarks(RecordingWriter):
    """Also records each flush's LSNs and watermark; nothing is committed before this start."""

    def __init__(self, table: str, seen: list[tuple[list[int], int]]) -> None:
        never = threading.Event()
        super().__init__(table, [], never, [], never)
        self.seen = seen

    def stage(self, drained: Drained, flush_id: str) -> Staged:
        self.seen.append((list(drained.lsns), drained.watermark))
        return super().stage(drained, flush_id)


def test_a_flush_during_replay_claims_only_the_records_replayed_so_far(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.model_validate({"writer": {"base_path": str(tmp_path)}, "buffer": {"max_age_s": 0.05},
                                        "iceberg": {"commit_interval_s": 0}})
    wal = WriteAheadLog(tmp_path / "wal", settings.wal)
    wal.open(1)
    for payload in requests("traces", 10, 12, seed=3):
        wal.append("traces", payload)
    wal.close()
    convert = service_module.CONVERTERS["traces"]

    def slow(payload: bytes):
        time.sleep(0.03)  # replay slower than the age limit: flushes happen before it is done
        return convert(payload)

    monkeypatch.setitem(service_module.CONVERTERS, "traces", slow)
    seen: list[tuple[list[int], int]] = []
    service = Service(settings, writers=lambda table: _Watermarks(table, seen))
    service.recover()
    service.flusher.close()
    assert sum(len(lsns) for lsns, _ in seen) == 12, "every replayed request was flushed"
    assert len(seen) >= 2, "some flushes ran while replay was still going"
    for lsns, watermark in seen:
        assert watermark == max(lsns), f"a flush of LSNs {lsns} claimed everything up to {watermark}"
