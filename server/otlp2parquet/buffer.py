"""Bounded in-memory buffer: one queue of Arrow batches per table under one global memory budget.

Bytes count from `offer` until the flush that took them has written its data files (`written`); a failed flush
puts its batches back (`requeue`) and they keep counting. Their LSNs stay pinned, so the WAL keeps them, until
the commit that makes those files visible (`committed`). That is what turns a slow or absent catalog into back-pressure
on the Collector rather than into unbounded memory or lost data. While a flush is written, its sorted copy
counts too (`working_copy`): it is the process's largest transient allocation.

Many small batches fragment the heap: each request's few long-lived buffers pin pages among its freed
temporaries, and RSS measured four times the Arrow bytes held. So each table's flush thread merges runs of
them (`compact`) into one contiguous batch per run, which the allocator hands back whole when it is flushed.

Every batch carries the LSN of the request it came from, and offers are serialised, so queue order is LSN
order. A flush takes a table's oldest batches, so it covers all of that table's rows below the first batch it
leaves (or, when it takes them all, up to the buffer's newest LSN): its watermark, which the writer records
with the commit and which crash recovery compares against.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import pyarrow as pa

from otlp2parquet.config import BufferSettings
from otlp2parquet.errors import BufferFullError, RequestTooLargeError

LsnSource = Callable[[], int]
COMPACT_BATCHES = 16  # merge a table's newest batches once this many have arrived


def arrow_bytes(batch: pa.RecordBatch) -> int:
    """The memory a batch pins: each of its buffers once, whole. (`nbytes` walks every list's offsets to count
    only the referenced ranges, and took 0.4 ms for a 1,000-span batch and 1.2 ms for 1,000 metric points.)"""
    return batch.get_total_buffer_size()


@dataclass
class _TableQueue:
    batches: list[pa.RecordBatch] = field(default_factory=list)
    lsns: list[int] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    oldest: float | None = None  # monotonic time of the oldest buffered row
    not_before: float = 0.0  # after a failed flush: no retry before this time (unless forced)
    in_flight: int | None = None  # lowest LSN of a flush being written
    staged: int | None = None  # lowest LSN of flushes written but not yet committed
    loose: int = 0  # batches from here on are as offered; before it, merged runs and returned flushes


@dataclass(frozen=True)
class Drained:
    """What one flush of one table takes out of the buffer."""

    table: str
    batches: list[pa.RecordBatch]
    lsns: list[int]  # one per batch, ascending; a merged batch has its first request's LSN
    watermark: int  # every row of this table with an LSN <= watermark is in this flush or committed before
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
        self._held: str | None = None  # why every export is refused, while the process is above its memory limit
        self.last_lsn = 0
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)

    @property
    def high_water_bytes(self) -> int:
        return int(self.settings.memory_budget_bytes * self.settings.high_water_fraction)

    @property
    def used_bytes(self) -> int:
        return self._used

    def accepting(self) -> bool:
        return self._used < self.high_water_bytes and self._held is None

    def hold(self, reason: str | None) -> None:
        """Refuse every export with `reason` until called with None (the process is above its memory limit), and
        flush every table now: what the buffer holds is the memory that can be freed."""
        with self._lock:
            self._held = reason
            if reason is not None:
                self._pressure = True
                self.changed.notify_all()

    def _refuse(self) -> BufferFullError:
        """Called with the lock held: flush every table now rather than at its age limit, and say why."""
        self._pressure = True
        self.changed.notify_all()
        return BufferFullError(f"buffer above its high-water mark ({self._used} of "
                               f"{self.settings.memory_budget_bytes} bytes); retry later", self.settings.retry_after_s)

    def admit(self) -> None:
        """Refuse (BufferFullError) before any work is spent on a request the buffer could not take."""
        with self._lock:
            if self._held is not None:
                raise BufferFullError(self._held, self.settings.retry_after_s)
            if self._used >= self.high_water_bytes:
                raise self._refuse()

    def _fits(self, size: int) -> bool:
        if size > self.settings.memory_budget_bytes:  # a replayed record from a larger budget: it comes in alone
            return self._used == 0
        return self._used < self.high_water_bytes and self._used + size <= self.settings.memory_budget_bytes

    def too_large(self, batches: Mapping[str, pa.RecordBatch]) -> RequestTooLargeError | None:
        """Why `batches` could never be offered without `block`, or None: more bytes than the whole budget."""
        return self._too_large(sum(arrow_bytes(batch) for batch in batches.values()))

    def _too_large(self, size: int) -> RequestTooLargeError | None:
        budget = self.settings.memory_budget_bytes
        if size <= budget:
            return None
        return RequestTooLargeError.over_budget(size, budget)

    def offer(self, batches: Mapping[str, pa.RecordBatch], lsn: int | LsnSource | None = None,
              block: bool = False) -> int:
        """Buffer all of `batches` or none of them, under one LSN, and return it.

        `lsn` is the LSN itself (replay), a function that assigns it (the WAL append, run under the buffer's
        lock so that LSN order is queue order), or None for the next number. Without `block`, a buffer too full
        for the batches raises BufferFullError, and batches larger than the whole budget RequestTooLargeError;
        with it, the call waits for flushes to make room (for such batches: until the buffer is empty).
        """
        sizes = {table: arrow_bytes(batch) for table, batch in batches.items()}
        size = sum(sizes.values())
        if not block and (too_large := self._too_large(size)) is not None:
            raise too_large
        with self._lock:
            while not self._fits(size):
                if not block:
                    raise self._refuse()
                self._pressure = True
                self.changed.notify_all()
                self.changed.wait(0.5)
            number = lsn() if callable(lsn) else (self.last_lsn + 1 if lsn is None else lsn)
            now = self._clock()
            for table, batch in batches.items():
                q = self._queues.setdefault(table, _TableQueue())
                q.batches.append(batch)
                q.lsns.append(number)
                q.rows += batch.num_rows
                q.bytes += sizes[table]
                if q.oldest is None:
                    q.oldest = now
            self.last_lsn = max(self.last_lsn, number)
            self._used += size
            self.changed.notify_all()
            return number

    def advance(self, lsn: int) -> None:
        """Every LSN up to `lsn` is now in the buffer or committed (replay is done): new flushes may claim them."""
        with self._lock:
            self.last_lsn = max(self.last_lsn, lsn)

    def compactable(self, table: str, min_batches: int = COMPACT_BATCHES) -> bool:
        """Whether `compact` has work to do. Call with `changed` held."""
        q = self._queues.get(table)
        return q is not None and len(q.batches) - q.loose >= min_batches

    def compact(self, table: str, min_batches: int = COMPACT_BATCHES) -> bool:
        """Merge `table`'s oldest loose batches, `min_batches` of them or about `max_bytes`, into one, once there
        are `min_batches`. Call from the table's flush thread.

        The merge runs outside the lock (offers only append meanwhile; only this thread takes or requeues). A run
        never spans a take, so it lies between two flush watermarks, and a writer that keeps batches with an
        LSN above its committed watermark keeps or drops a run whole, as it would its requests.
        """
        with self._lock:
            if not self.compactable(table, min_batches):
                return False
            q = self._queues[table]
            # At most `min_batches` and about `max_bytes`: after the flush thread was busy, the loose batches can
            # reach the high-water mark, and one run of all of them was a copy of it and then a flush of it.
            start, end, size = q.loose, q.loose, 0
            while end < len(q.batches) and end - start < min_batches and size < self.settings.max_bytes:
                size += arrow_bytes(q.batches[end])
                end += 1
            run = q.batches[start:end]
        try:
            merged = pa.concat_batches(run)
            delta = arrow_bytes(merged) - sum(map(arrow_bytes, run))  # shared buffers are now copied: count them
        except pa.ArrowException:  # e.g. schemas differ, or no memory: leave these as they are, never kill the thread
            merged, delta = None, 0
        with self._lock:
            if self._queues.get(table) is not q or list(map(id, q.batches[start:end])) != list(map(id, run)):
                return False
            if merged is None:
                q.loose = end
                return False
            q.batches[start:end] = [merged]
            q.lsns[start:end] = [q.lsns[start]]
            q.loose = start + 1
            q.bytes += delta
            self._used += delta
            return True

    def _reason(self, q: _TableQueue, now: float, force: bool) -> str | None:
        if not q.batches or q.in_flight is not None:
            return None
        if force:
            return "shutdown"
        if now < q.not_before:
            return None
        if q.rows >= self.settings.max_rows:
            return "rows"
        if q.bytes >= self.settings.max_bytes:
            return "bytes"
        if q.oldest is not None and now - q.oldest >= self.settings.max_age_s:
            return "age"
        return "pressure" if self._pressure else None

    def take(self, table: str, force: bool = False) -> Drained | None:
        """Remove and return `table`'s oldest batches if a flush is due (or `force`). Call with `changed` held.

        A flush stops at the batch that brings it to `max_rows` or `max_bytes`; the rest stays queued, due at
        once. Taking the whole queue made one flush of everything that arrived while the flush thread was busy
        committing: up to the high-water mark, four flushes' worth, and its sorted copy and encoding took
        100-150 MiB more RSS than a flush of `max_bytes` (ad hoc, traces at saturation)."""
        q = self._queues.get(table)
        if q is None:
            return None
        reason = self._reason(q, self._clock(), force)
        if reason is None:
            return None
        end, rows, size = 0, 0, 0
        while end < len(q.batches) and rows < self.settings.max_rows and size < self.settings.max_bytes:
            rows += q.batches[end].num_rows
            size += arrow_bytes(q.batches[end])
            end += 1
        if end == len(q.batches):
            rows, size = q.rows, q.bytes  # the queue's count, so that what `written` frees is what was counted
        # Queue order is LSN order: every row of this table at or below the watermark is in this flush or earlier.
        watermark = q.lsns[end] - 1 if end < len(q.batches) else self.last_lsn
        drained = Drained(table, q.batches[:end], q.lsns[:end], watermark, rows, size, reason)
        rest = _TableQueue(batches=q.batches[end:], lsns=q.lsns[end:], rows=q.rows - rows, bytes=q.bytes - size,
                           oldest=q.oldest if end < len(q.batches) else None, in_flight=q.lsns[0],
                           staged=q.staged, loose=max(0, q.loose - end))
        self._queues[table] = rest
        if not any(other.batches for other in self._queues.values()):
            self._pressure = False
        return drained

    def written(self, drained: Drained) -> None:
        """`drained` is in data files: free its bytes in the budget; its LSNs stay pinned until `committed`."""
        with self._lock:
            self._used -= drained.bytes
            if self._used < self.high_water_bytes // 2:
                self._pressure = False  # pressure flushes drain to half the mark, not to empty (tiny files)
            q = self._queues[drained.table]
            q.in_flight = None
            if drained.lsns:
                q.staged = drained.lsns[0] if q.staged is None else min(q.staged, drained.lsns[0])
            self.changed.notify_all()

    @contextmanager
    def working_copy(self, size: int) -> Iterator[None]:
        """Count `size` more bytes while the block runs: a flush's sorted copy, so the receiver refuses sooner."""
        with self._lock:
            self._used += size
        try:
            yield
        finally:
            with self._lock:
                self._used -= size
                self.changed.notify_all()

    def committed(self, table: str) -> None:
        """Every staged flush of `table` is committed: the WAL may drop them."""
        with self._lock:
            self._queues[table].staged = None

    def requeue(self, drained: Drained, retry_in_s: float) -> None:
        """`drained` failed: put it back in front of newer rows; it keeps its bytes and is retried later."""
        with self._lock:
            q = self._queues[drained.table]
            q.batches[:0] = drained.batches
            q.lsns[:0] = drained.lsns
            q.loose += len(drained.batches)  # a later run must not mix these with rows offered after the take
            q.rows += drained.rows
            q.bytes += drained.bytes
            q.oldest = min(q.oldest or self._clock(), self._clock())
            q.in_flight = None
            q.not_before = self._clock() + retry_in_s
            self.changed.notify_all()

    def committed_through(self) -> int:
        """The highest LSN below which every offered row has been committed (everything older can be trimmed)."""
        with self._lock:
            pending = [lsn for q in self._queues.values()
                       for lsn in ((q.lsns[0] if q.lsns else None), q.in_flight, q.staged) if lsn is not None]
            return min(pending) - 1 if pending else self.last_lsn

    def next_deadline(self, table: str) -> float | None:
        """Seconds until `table` may be due by age or retry time; None when it holds nothing. Hold `changed`."""
        q = self._queues.get(table)
        if q is None or q.oldest is None:
            return None
        now = self._clock()
        if now < q.not_before:  # backing off after a failure: look again when that ends
            return q.not_before - now
        return max(0.0, q.oldest + self.settings.max_age_s - now)

    def ages(self) -> dict[str, float]:
        """Seconds since each table's oldest buffered row arrived (0 for an empty table)."""
        with self._lock:
            now = self._clock()
            return {t: (now - q.oldest if q.oldest is not None else 0.0) for t, q in self._queues.items()}

    def stats(self) -> dict[str, tuple[int, int]]:
        """Rows and bytes buffered per table (not counting flushes being written)."""
        with self._lock:
            return {t: (q.rows, q.bytes) for t, q in self._queues.items()}
