"""Flushing: one thread per table takes its due batches from the buffer and hands them to that table's writer.

One thread per table is also the "one committer per table" rule: a pyiceberg `Table` is never shared between
threads. The age trigger is the thread's own timed wait, so it fires with no new traffic.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from otlp2parquet.buffer import Buffer, Drained
from otlp2parquet.schemas import TABLES
from otlp2parquet.telemetry import Telemetry
from otlp2parquet.writer import TableWriter, WriterFactory

log = logging.getLogger(__name__)
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 30.0


@dataclass
class FlushStats:
    flushes: int = 0
    rows: int = 0
    failures: int = 0


class Flusher:
    def __init__(self, buffer: Buffer, writers: WriterFactory, tables: list[str] | None = None,
                 on_committed: Callable[[], None] | None = None, telemetry: Telemetry | None = None) -> None:
        self.buffer = buffer
        self.telemetry = telemetry or Telemetry()
        self.stats: dict[str, FlushStats] = {}
        self._writers: dict[str, TableWriter] = {}
        self._factory = writers
        self._on_committed = on_committed
        self._stopping = False
        self.lost_at_shutdown = False
        self.tables = tables or list(TABLES)
        self._threads = [threading.Thread(target=self._run, args=(t,), name=f"flush-{t}", daemon=True)
                         for t in self.tables]

    def writer(self, table: str) -> TableWriter:
        """The table's writer. Before `start` any thread may use it; after, only the table's flush thread."""
        if table not in self._writers:
            self._writers[table] = self._factory(table)
        return self._writers[table]

    def start(self) -> None:
        for table, thread in zip(self.tables, self._threads, strict=True):
            self.stats[table] = FlushStats()
            thread.start()

    def _next(self, table: str) -> Drained | None:
        """Block until `table` has a due flush; None once stopping and nothing is left."""
        with self.buffer.changed:
            while True:
                drained = self.buffer.take(table, force=self._stopping)
                if drained is not None or self._stopping:
                    return drained
                self.buffer.changed.wait(self.buffer.next_deadline(table))

    def _run(self, table: str) -> None:
        stats = self.stats[table]
        failures_in_a_row = 0
        while (drained := self._next(table)) is not None:
            flush_id = uuid.uuid4().hex
            started = time.monotonic()
            try:
                result = self.writer(table).write(drained, flush_id)
            except Exception as exc:  # the rows stay in the buffer (and the WAL) and are retried
                self.telemetry.flushes.labels(table, drained.reason, "failed").inc()
                stats.failures += 1
                failures_in_a_row += 1
                retry_in = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (failures_in_a_row - 1))
                log.error("flush of %s failed: %s", table, exc, extra={
                    "table": table, "flush_id": flush_id, "rows": drained.rows, "error": repr(exc),
                    "retry_in_s": None if self._stopping else retry_in})
                if self._stopping:
                    self.lost_at_shutdown = True  # still in the WAL: replayed at the next start
                    self.buffer.release(drained)
                    return
                self.buffer.requeue(drained, retry_in)
                continue
            failures_in_a_row = 0
            self.buffer.release(drained)
            t = self.telemetry
            t.flushes.labels(table, drained.reason, "ok").inc()
            t.flush_duration.labels(table).observe(time.monotonic() - started)
            t.rows_written.labels(table).inc(result.rows)
            t.files_written.labels(table).inc(len(result.paths))
            t.file_bytes_written.labels(table).inc(result.file_size)
            if self._on_committed is not None:
                self._on_committed()
            stats.flushes += 1
            stats.rows += result.rows
            log.info("flushed %s", result.table, extra={
                "table": result.table, "flush_id": flush_id, "reason": drained.reason, "rows": result.rows,
                "arrow_bytes": drained.bytes, "file_bytes": result.file_size, "files": len(result.paths),
                "duration_s": round(time.monotonic() - started, 3), "snapshot_id": result.snapshot_id,
                "wal_lsn": drained.watermark})

    def close(self) -> bool:
        """Flush everything left (one attempt per table), close the writers; True when all of it was written."""
        with self.buffer.changed:
            self._stopping = True
            self.buffer.changed.notify_all()
        for thread in self._threads:
            thread.join()
        for writer in self._writers.values():
            writer.close()
        return not self.lost_at_shutdown
