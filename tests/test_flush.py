"""The flusher: the age timer fires with no traffic, failures are counted and free memory, close flushes all."""

from __future__ import annotations

import threading
import time
from typing import ClassVar

import pyarrow as pa

from otlp2parquet.buffer import Buffer, Drained, arrow_bytes
from otlp2parquet.config import BufferSettings
from otlp2parquet.flush import Flusher
from otlp2parquet.writer import Staged
from tests.waiting import wait_for
from tests.writers import RecordingWriter


def _batch(rows: int) -> pa.RecordBatch:
    return pa.record_batch({"x": pa.array(range(rows), pa.int64())})


def _flusher(commit_interval_s: float = 0.0, **limits: float
             ) -> tuple[Buffer, Flusher, list[tuple[str, int, float]], threading.Event]:
    flusher, log, fail, _, _ = _committing_flusher(commit_interval_s, **limits)
    return flusher.buffer, flusher, log, fail


def _committing_flusher(commit_interval_s: float = 0.0, **limits: float) -> tuple[
        Flusher, list[tuple[str, int, float]], threading.Event, list[tuple[str, str, int]], threading.Event]:
    log: list[tuple[str, int, float]] = []
    commits: list[tuple[str, str, int]] = []
    fail, fail_commit = threading.Event(), threading.Event()
    buffer = Buffer(BufferSettings(**limits))
    flusher = Flusher(buffer, lambda table: RecordingWriter(table, log, fail, commits, fail_commit),
                      tables=["logs", "traces"], commit_interval_s=commit_interval_s)
    flusher.start()
    return flusher, log, fail, commits, fail_commit


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


def test_a_flush_failing_at_shutdown_is_reported_and_its_wal_records_are_kept() -> None:
    buffer, flusher, log, fail = _flusher(max_age_s=60)
    buffer.offer({"logs": _batch(3)}, lsn=7)
    fail.set()
    assert not flusher.close(), "close reports rows that were not written"
    assert log == []
    assert buffer.committed_through() == 6, "LSN 7 must stay in the WAL for the next start"


def test_a_commit_failing_at_shutdown_keeps_the_wal_records() -> None:
    flusher, log, _, commits, fail_commit = _committing_flusher(max_age_s=60)
    flusher.buffer.offer({"traces": _batch(3)}, lsn=4)
    fail_commit.set()
    assert not flusher.close()
    assert [(t, r) for t, r, _ in log] == [("traces", 3)] and commits == []
    assert flusher.buffer.committed_through() == 3


def test_under_load_a_table_gets_one_commit_per_interval_holding_many_flushes() -> None:
    flusher, log, _, commits, _ = _committing_flusher(commit_interval_s=1.0, max_rows=10, max_age_s=60)
    buffer = flusher.buffer
    buffer.offer({"traces": _batch(10)}, lsn=1)
    assert wait_for(lambda: len(commits) == 1), "the first flush commits at once"
    for lsn in (2, 3, 4):
        buffer.offer({"traces": _batch(10)}, lsn=lsn)
        assert wait_for(lambda lsn=lsn: len(log) == lsn), "rows triggers still write files at once"
    assert buffer.used_bytes == 0, "written files free their memory before the commit"
    assert len(commits) == 1 and buffer.committed_through() == 1, "the WAL keeps what is not committed yet"
    assert wait_for(lambda: len(commits) == 2, timeout=5)
    assert commits[1][2] == 3, "one commit for the three flushes of the interval"
    assert buffer.committed_through() == 4
    assert flusher.close()


def test_while_commits_fail_nothing_more_is_staged_and_the_retry_keeps_its_commit_id() -> None:
    flusher, log, _, commits, fail_commit = _committing_flusher(max_rows=10, max_age_s=60)
    buffer = flusher.buffer
    fail_commit.set()
    buffer.offer({"logs": _batch(10)}, lsn=1)
    assert wait_for(lambda: flusher.stats["logs"].failures == 1)
    buffer.offer({"logs": _batch(10)}, lsn=2)
    time.sleep(0.3)
    assert len(log) == 1 and buffer.used_bytes == 80, "the new rows wait in memory: back-pressure"
    fail_commit.clear()
    assert wait_for(lambda: len(commits) == 2, timeout=10)
    assert commits[0][2] == 1 and commits[1][2] == 1
    assert flusher.writer("logs").failed_commit_ids == [commits[0][1]], "a retried commit is recognisable"
    assert buffer.committed_through() == 2
    assert flusher.close()


class _GatedWriter(RecordingWriter):
    """Stages only once `gate` is set, announcing each staging in `staging`."""

    gate = threading.Event()
    staging = threading.Event()

    def stage(self, drained: Drained, flush_id: str) -> Staged:
        _GatedWriter.staging.set()
        _GatedWriter.gate.wait(10)
        return super().stage(drained, flush_id)


def test_shutdown_during_a_flush_commits_everything_left_once() -> None:
    log: list[tuple[str, int, float]] = []
    commits: list[tuple[str, str, int]] = []
    never = threading.Event()
    buffer = Buffer(BufferSettings(max_rows=10, max_age_s=60))
    flusher = Flusher(buffer, lambda table: _GatedWriter(table, log, never, commits, never),
                      tables=["logs"], commit_interval_s=60)
    _GatedWriter.gate.set()
    flusher.start()
    buffer.offer({"logs": _batch(10)}, lsn=1)
    assert wait_for(lambda: len(commits) == 1), "the first flush commits at once"
    _GatedWriter.gate.clear()
    _GatedWriter.staging.clear()
    buffer.offer({"logs": _batch(10)}, lsn=2)
    assert _GatedWriter.staging.wait(5)
    buffer.offer({"logs": _batch(3)}, lsn=3)  # arrives while the flush of lsn 2 is being written
    closing = threading.Thread(target=flusher.close)
    closing.start()
    assert wait_for(lambda: flusher._stopping)
    _GatedWriter.gate.set()
    closing.join(10)
    assert [rows for _, rows, _ in log] == [10, 10, 3]
    assert [flushes for _, _, flushes in commits] == [1, 2], "one shutdown commit for both flushes"
    assert buffer.committed_through() == 3


def test_close_flushes_everything_left() -> None:
    buffer, flusher, log, _ = _flusher(max_age_s=60)
    buffer.offer({"logs": _batch(3), "traces": _batch(4)})
    assert flusher.close()
    assert sorted((t, r) for t, r, _ in log) == [("logs", 3), ("traces", 4)]
    assert buffer.used_bytes == 0


class _SlowWriter(RecordingWriter):
    """Stages slowly, tracking how many stagings overlap and the buffer's bytes seen while staging."""

    running = 0
    most = 0
    used_while_staging: ClassVar[list[int]] = []
    lock = threading.Lock()
    buffer: Buffer

    def stage(self, drained: Drained, flush_id: str) -> Staged:
        cls = _SlowWriter
        with cls.lock:
            cls.running += 1
            cls.most = max(cls.most, cls.running)
            cls.used_while_staging.append(cls.buffer.used_bytes)
        time.sleep(0.2)
        with cls.lock:
            cls.running -= 1
        return super().stage(drained, flush_id)


def _slow_flusher(parallel_flushes: int) -> tuple[Buffer, Flusher, list[tuple[str, int, float]]]:
    log: list[tuple[str, int, float]] = []
    never = threading.Event()
    buffer = Buffer(BufferSettings(max_rows=10))
    _SlowWriter.running = _SlowWriter.most = 0
    _SlowWriter.used_while_staging, _SlowWriter.buffer = [], buffer
    flusher = Flusher(buffer, lambda table: _SlowWriter(table, log, never, [], never),
                      tables=["logs", "traces"], parallel_flushes=parallel_flushes)
    flusher.start()
    return buffer, flusher, log


def test_one_flush_is_written_at_once_and_its_sorted_copy_counts_against_the_budget() -> None:
    buffer, flusher, log = _slow_flusher(parallel_flushes=1)
    batch = _batch(10)
    buffer.offer({"logs": batch, "traces": batch})
    assert wait_for(lambda: len(log) == 2)
    assert _SlowWriter.most == 1
    # While one table is staged: both tables' rows are held, plus the staged one's working copy.
    assert max(_SlowWriter.used_while_staging) == 3 * arrow_bytes(batch)
    assert buffer.used_bytes == 0
    flusher.close()


def test_parallel_flushes_lets_tables_write_at_the_same_time() -> None:
    buffer, flusher, log = _slow_flusher(parallel_flushes=2)
    buffer.offer({"logs": _batch(10), "traces": _batch(10)})
    assert wait_for(lambda: len(log) == 2)
    assert _SlowWriter.most == 2
    flusher.close()


def test_the_flush_thread_merges_small_batches_while_they_wait() -> None:
    buffer, flusher, log, _ = _flusher(max_age_s=1.0)
    seen: list[int] = []
    writer = flusher.writer("logs")
    original = writer.stage
    writer.stage = lambda drained, flush_id: (seen.append(len(drained.batches)), original(drained, flush_id))[1]
    for _ in range(40):
        buffer.offer({"logs": _batch(2)})
    assert wait_for(lambda: log)
    assert log[0][1] == 80
    assert seen[0] < 40  # runs of 16 became one batch each
    flusher.close()
