"""Flushing: one thread per table takes its due batches from the buffer and hands them to that table's writer.

One thread per table is also the "one committer per table" rule: a pyiceberg `Table` is never shared between
threads. The age trigger is the thread's own timed wait, so it fires with no new traffic.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass

from otlp2parquet.buffer import Buffer, Drained
from otlp2parquet.schemas import TABLES
from otlp2parquet.writer import TableWriter, WriteResult, WriterFactory

log = logging.getLogger(__name__)


@dataclass
class FlushStats:
    flushes: int = 0
    rows: int = 0
    failures: int = 0
    last: WriteResult | None = None


class Flusher:
    def __init__(self, buffer: Buffer, writers: WriterFactory, tables: list[str] | None = None) -> None:
        self.buffer = buffer
        self.stats: dict[str, FlushStats] = {}
        self._writers: dict[str, TableWriter] = {}
        self._factory = writers
        self._stopping = False
        self._threads = [threading.Thread(target=self._run, args=(t,), name=f"flush-{t}", daemon=True)
                         for t in (tables or list(TABLES))]

    def start(self) -> None:
        for thread in self._threads:
            self.stats[thread.name.removeprefix("flush-")] = FlushStats()
            thread.start()

    def _next(self, table: str) -> Drained | None:
        """Block until `table` has a due flush; None once stopping and nothing is left."""
        with self.buffer.changed:
            while True:
                drained = self.buffer.take(table, force=self._stopping)
                if drained is not None or self._stopping:
                    return drained
                self.buffer.changed.wait(self.buffer.next_deadline(table))

    def _writer(self, table: str) -> TableWriter:
        if table not in self._writers:
            self._writers[table] = self._factory(table)
        return self._writers[table]

    def _run(self, table: str) -> None:
        stats = self.stats[table]
        while (drained := self._next(table)) is not None:
            flush_id = uuid.uuid4().hex
            started = time.monotonic()
            try:
                result = self._writer(table).write(drained.batches, flush_id)
            except Exception as exc:  # counted and logged; the thread keeps serving later flushes
                stats.failures += 1
                log.error("flush of %s failed: %s", table, exc,
                          extra={"table": table, "flush_id": flush_id, "rows": drained.rows, "error": repr(exc)})
                continue
            finally:
                self.buffer.release(drained.bytes)
            stats.flushes += 1
            stats.rows += result.rows
            stats.last = result
            log.info("flushed %s", result.table, extra={
                "table": result.table, "flush_id": flush_id, "reason": drained.reason, "rows": result.rows,
                "arrow_bytes": drained.bytes, "file_bytes": result.file_size, "files": len(result.paths),
                "duration_s": round(time.monotonic() - started, 3), "snapshot_id": result.snapshot_id})

    def close(self) -> bool:
        """Flush everything left, wait for the writers, and report whether every flush succeeded."""
        with self.buffer.changed:
            self._stopping = True
            self.buffer.changed.notify_all()
        for thread in self._threads:
            thread.join()
        for writer in self._writers.values():
            writer.close()
        return not any(s.failures for s in self.stats.values())
