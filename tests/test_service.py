"""The Service as a whole: recovery replays the WAL while the flush threads already run; the memory limit
refuses exports and lets them in again."""

from __future__ import annotations

import pathlib
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import otlp2parquet.memory as memory_module
import otlp2parquet.service as service_module
from bench.load import METHODS
from bench.workload import requests
from otlp2parquet.buffer import Drained
from otlp2parquet.config import Settings
from otlp2parquet.service import Service
from otlp2parquet.wal import WriteAheadLog
from otlp2parquet.writer import Staged
from tests.waiting import wait_for
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


def test_a_memory_limit_hold_lifts_once_resident_memory_falls_below_the_limit(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole loop a Collector sees: above the limit, NOT_SERVING and UNAVAILABLE; below it again, SERVING and
    exports accepted, without a restart. The process's RSS is stood in for, since a real one cannot be steered."""
    limit = 256 * 1024 * 1024
    resident = [limit // 2]
    monkeypatch.setattr(memory_module, "rss_bytes", lambda: resident[0])
    settings = Settings.model_validate({"writer": {"base_path": str(tmp_path)},
                                        "server": {"listen": "127.0.0.1:0", "memory_limit_bytes": limit},
                                        "telemetry": {"enabled": False}})
    never = threading.Event()
    service = Service(settings, writers=lambda table: RecordingWriter(table, [], never, [], never))
    port = service.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            export = channel.unary_unary(METHODS["logs"])
            status = lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=5).status  # noqa: E731
            payload = next(requests("logs", 10, 1, seed=4))
            assert status() == health_pb2.HealthCheckResponse.SERVING
            resident[0] = 2 * limit
            assert wait_for(lambda: status() == health_pb2.HealthCheckResponse.NOT_SERVING)
            with pytest.raises(grpc.RpcError) as refused:
                export(payload, timeout=5)
            assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
            assert "process memory above its limit" in (refused.value.details() or "")
            resident[0] = limit // 2
            assert wait_for(lambda: status() == health_pb2.HealthCheckResponse.SERVING)
            export(payload, timeout=5)
    finally:
        assert service.stop()
    assert service.flusher.stats["logs"].rows == 10, "the export accepted after the hold was written"
