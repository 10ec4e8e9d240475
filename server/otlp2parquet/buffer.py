"""Bounded in-memory buffer: one queue of Arrow batches per table under one global memory budget.

Bytes count from `offer` until the flush that took them has finished writing (`release`), so data being
written still counts against the budget: that is what turns a slow catalog into back-pressure on the Collector
rather than into unbounded memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pyarrow as pa

from otlp2parquet.config import BufferSettings
from otlp2parquet.errors import BufferFullError


@dataclass
class _TableQueue:
    batches: list[pa.RecordBatch] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    oldest: float | None = None  # monotonic time of the oldest buffered row


@dataclass(frozen=True)
class Drained:
    """What one flush of one table takes out of the buffer."""

    table: str
    batches: list[pa.RecordBatch]
    rows: int
    bytes: int
    reason: str


class Buffer:
    def __init__(self, settings: BufferSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._queues: dict[str, _TableQueue] = {}
        self._used = 0  # buffered + being written
        self._pressure = False
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)

    @property
    def high_water_bytes(self) -> int:
        return int(self.settings.memory_budget_bytes * self.settings.high_water_fraction)

    @property
    def used_bytes(self) -> int:
        return self._used

    def accepting(self) -> bool:
        return self._used < self.high_water_bytes

    def _refuse(self) -> BufferFullError:
        """Called with the lock held: flush every table now rather than at its age limit, and say why."""
        self._pressure = True
        self.changed.notify_all()
        return BufferFullError(f"buffer above its high-water mark ({self._used} of "
                               f"{self.settings.memory_budget_bytes} bytes); retry later", self.settings.retry_after_s)

    def admit(self) -> None:
        """Refuse (BufferFullError) before any work is spent on a request the buffer could not take."""
        with self._lock:
            if self._used >= self.high_water_bytes:
                raise self._refuse()

    def offer(self, batches: Mapping[str, pa.RecordBatch]) -> None:
        """Buffer all of `batches` or none of them (BufferFullError)."""
        size = sum(b.nbytes for b in batches.values())
        with self._lock:
            if self._used >= self.high_water_bytes or self._used + size > self.settings.memory_budget_bytes:
                raise self._refuse()
            now = self._clock()
            for table, batch in batches.items():
                q = self._queues.setdefault(table, _TableQueue())
                q.batches.append(batch)
                q.rows += batch.num_rows
                q.bytes += batch.nbytes
                if q.oldest is None:
                    q.oldest = now
            self._used += size
            self.changed.notify_all()

    def _reason(self, q: _TableQueue, now: float, force: bool) -> str | None:
        if not q.batches:
            return None
        if q.rows >= self.settings.max_rows:
            return "rows"
        if q.bytes >= self.settings.max_bytes:
            return "bytes"
        if q.oldest is not None and now - q.oldest >= self.settings.max_age_s:
            return "age"
        if self._pressure:
            return "pressure"
        return "shutdown" if force else None

    def take(self, table: str, force: bool = False) -> Drained | None:
        """Remove and return `table`'s batches if a flush is due (or `force`). Call with `changed` held."""
        q = self._queues.get(table)
        if q is None:
            return None
        reason = self._reason(q, self._clock(), force)
        if reason is None:
            return None
        drained = Drained(table, q.batches, q.rows, q.bytes, reason)
        self._queues[table] = _TableQueue()
        if not any(other.batches for other in self._queues.values()):
            self._pressure = False
        return drained

    def release(self, nbytes: int) -> None:
        """A flush has finished with `nbytes`: free them in the budget."""
        with self._lock:
            self._used -= nbytes
            self.changed.notify_all()

    def next_deadline(self, table: str) -> float | None:
        """Seconds until `table` is due by age, or None when it holds nothing. Call with `changed` held."""
        q = self._queues.get(table)
        if q is None or q.oldest is None:
            return None
        return max(0.0, q.oldest + self.settings.max_age_s - self._clock())

    def tables(self) -> list[str]:
        with self._lock:
            return list(self._queues)

    def stats(self) -> dict[str, tuple[int, int]]:
        """Rows and bytes buffered per table."""
        with self._lock:
            return {t: (q.rows, q.bytes) for t, q in self._queues.items()}
