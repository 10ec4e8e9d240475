"""The flusher: the age timer fires with no traffic, failures are counted and free memory, close flushes all."""

from __future__ import annotations

import threading
import time

import pyarrow as pa

from otlp2parquet.buffer import Buffer, Drained
from otlp2parquet.config import BufferSettings
from otlp2parquet.flush import Flusher
from otlp2parquet.writer import WriteResult
from tests.waiting import wait_for


class RecordingWriter:
    """Records flushes; fails while `fail` is set."""

    def __init__(self, table: str, log: list[tuple[str, int, float]], fail: threading.Event) -> None:
        self.table, self.log, self.fail = table, log, fail

    def write(self, drained: Drained, flush_id: str) -> WriteResult:
        if self.fail.is_set():
            raise OSError("disk full (injected)")
        rows = drained.rows
        self.log.append((self.table, rows, time.monotonic()))
        return WriteResult(self.table, [], 0, rows, committed_to_catalog=False)

    def committed_lsn(self) -> int:
        return 0

    def close(self) -> None:
        pass


def _batch(rows: int) -> pa.RecordBatch:
    return pa.record_batch({"x": pa.array(range(rows), pa.int64())})


def _flusher(**limits: float) -> tuple[Buffer, Flusher, list[tuple[str, int, float]], threading.Event]:
    log: list[tuple[str, int, float]] = []
    fail = threading.Event()
    buffer = Buffer(BufferSettings(**limits))
    flusher = Flusher(buffer, lambda table: RecordingWriter(table, log, fail), tables=["logs", "traces"])
    flusher.start()
    return buffer, flusher, log, fail


def test_age_timer_fires_without_new_traffic() -> None:
    buffer, flusher, log, _ = _flusher(max_age_s=0.3)
    offered = time.monotonic()
    buffer.offer({"logs": _batch(5)})
    assert wait_for(lambda: log)
    (table, rows, at), = log
    assert (table, rows) == ("logs", 5)
    assert 0.25 <= at - offered < 2.0
    assert buffer.used_bytes == 0
    assert flusher.close()


def test_rows_trigger_flushes_at_once() -> None:
    buffer, flusher, log, _ = _flusher(max_rows=100, max_age_s=60)
    buffer.offer({"traces": _batch(100)})
    assert wait_for(lambda: log)
    assert log[0][:2] == ("traces", 100)
    assert flusher.close()


def test_a_failed_flush_keeps_its_rows_and_memory_and_retries_them() -> None:
    buffer, flusher, log, fail = _flusher(max_rows=10, max_age_s=60)
    fail.set()
    buffer.offer({"logs": _batch(10)})
    assert wait_for(lambda: flusher.stats["logs"].failures == 1)
    assert wait_for(lambda: buffer.stats().get("logs") == (10, 80)), "the rows are back in the buffer"
    assert buffer.used_bytes == 80, "and still count against the budget (back-pressure)"
    fail.clear()
    assert wait_for(lambda: log, timeout=10)
    assert [(t, r) for t, r, _ in log] == [("logs", 10)]
    assert buffer.used_bytes == 0
    assert flusher.close()


def test_a_flush_failing_at_shutdown_is_reported() -> None:
    buffer, flusher, log, fail = _flusher(max_age_s=60)
    buffer.offer({"logs": _batch(3)})
    fail.set()
    assert not flusher.close(), "close reports rows that were not written (the WAL still has them)"
    assert log == []


def test_close_flushes_everything_left() -> None:
    buffer, flusher, log, _ = _flusher(max_age_s=60)
    buffer.offer({"logs": _batch(3), "traces": _batch(4)})
    assert flusher.close()
    assert sorted((t, r) for t, r, _ in log) == [("logs", 3), ("traces", 4)]
    assert buffer.used_bytes == 0
