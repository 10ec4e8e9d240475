"""The write-ahead log: every accepted request's raw bytes, appended before the export is acknowledged.

Records carry a log sequence number (LSN) that only grows. Segments are files named by their first LSN and are
deleted once every row they hold has been committed (`trim`). With fsync = "always", concurrent appends share
one fsync (group commit): the first waiter syncs for everyone written so far, the others wait for it.
"""

from __future__ import annotations

import logging
import os
import pathlib
import threading
from collections.abc import Iterator
from typing import BinaryIO

from otlp2parquet.config import WalSettings
from otlp2parquet.disk import fsync_path
from otlp2parquet.errors import WalError
from otlp2parquet.wal.codec import HEADER, SEGMENT_MAGIC, Record, TornRecord, decode, header, payload_length

log = logging.getLogger(__name__)
SUFFIX = ".wal"


def _segment_name(first_lsn: int) -> str:
    return f"{first_lsn:020d}{SUFFIX}"


class WriteAheadLog:
    def __init__(self, directory: pathlib.Path, settings: WalSettings) -> None:
        self.dir = directory
        self.settings = settings
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # appends and segment changes
        self._synced = threading.Condition()
        self._file: BinaryIO | None = None
        self._size = 0  # bytes in the current segment; the file position is not trusted after a failed write
        self._segment_first = 0
        self._segment_last = 0
        self._segments: dict[int, int] = {}  # first lsn -> last lsn, closed segments only
        self.last_lsn = 0  # highest LSN written
        self._synced_lsn = 0
        self._syncing = False
        self._stop = threading.Event()
        self._interval: threading.Thread | None = None

    # -- recovery -----------------------------------------------------------------------------------------------

    def segments(self) -> list[pathlib.Path]:
        return sorted(self.dir.glob(f"*{SUFFIX}"))

    def _read(self, path: pathlib.Path, repair: bool) -> Iterator[Record]:
        """Records of one segment; at a torn tail, stop (and cut the file there when `repair`)."""
        with path.open("rb") as f:
            if f.read(len(SEGMENT_MAGIC)) != SEGMENT_MAGIC:
                raise WalError(f"{path} is not a WAL segment of this version")
            good = f.tell()
            while True:
                header = f.read(HEADER.size)
                if not header:
                    return
                try:
                    if len(header) < HEADER.size:
                        raise TornRecord("header cut short")
                    record = decode(header, f.read(payload_length(header)))
                except TornRecord as torn:
                    if repair:
                        log.warning("cutting the WAL at a torn record", extra={"segment": path.name, "offset": good,
                                                                               "reason": str(torn)})
                        os.truncate(path, good)
                    return
                good = f.tell()
                yield record

    def recover(self) -> int:
        """Scan all segments once (cutting a torn tail) and return the highest LSN found (0 for none)."""
        last = 0
        for path in self.segments():
            first = int(path.stem)
            segment_last = first - 1  # an empty segment still proves that LSNs up to here were used
            for record in self._read(path, repair=True):
                segment_last = record.lsn
            self._segments[first] = segment_last
            last = max(last, segment_last)
        return last

    def replay(self, after: int) -> Iterator[Record]:
        """Stream every record with an LSN above `after`, oldest first, one at a time (bounded memory)."""
        for path in self.segments():
            first = int(path.stem)
            if first in self._segments and self._segments[first] <= after:
                continue
            for record in self._read(path, repair=False):
                if record.lsn > after:
                    yield record

    # -- appending ----------------------------------------------------------------------------------------------

    def open(self, next_lsn: int) -> None:
        """Start appending at `next_lsn` (above everything in the log and everything ever committed)."""
        self.last_lsn = self._synced_lsn = next_lsn - 1
        self._roll()
        if self.settings.fsync == "interval":
            self._interval = threading.Thread(target=self._sync_every_interval, name="wal-fsync", daemon=True)
            self._interval.start()

    def _roll(self) -> None:
        """Close the current segment (synced) and start a new one at the next LSN. Call under `_lock`."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._segments[self._segment_first] = self._segment_last
        self._segment_first = self._segment_last = self.last_lsn + 1
        path = self.dir / _segment_name(self._segment_first)
        self._file = path.open("ab", buffering=0)
        self._size = os.fstat(self._file.fileno()).st_size
        if self._size == 0:
            self._file.write(SEGMENT_MAGIC)
            self._size = len(SEGMENT_MAGIC)
        fsync_path(self.dir)

    def append(self, signal: str, payload: bytes) -> int:
        """Write one record (not yet synced) and return its LSN. On failure nothing of it remains."""
        with self._lock:
            if self._file is None:
                raise WalError("the WAL is closed")
            lsn = self.last_lsn + 1
            head = header(lsn, signal, payload)
            size = len(head) + len(payload)
            try:
                if self._size + size > self.settings.segment_bytes and \
                        self._segment_last >= self._segment_first:  # full, and holds at least one record
                    self._roll()
                try:
                    for part in (head, payload):
                        view, written = memoryview(part), 0
                        while written < len(view):  # an unbuffered write may be short (O_APPEND: at the end)
                            written += self._file.write(view[written:])
                except OSError:
                    self._file.truncate(self._size)  # no partial record may stay behind a later good one
                    raise
            except OSError as exc:
                raise WalError(f"cannot write the WAL in {self.dir}: {exc}") from exc
            self._size += size
            self.last_lsn = self._segment_last = lsn
            return lsn

    def _sync_current(self) -> int:
        """fsync the current segment; return the LSN up to which every record is then on disk.

        It syncs a duplicate of the segment's descriptor: an append may roll the segment, closing its file, while
        the fsync runs (the closed file object then raised ValueError, which answered an export UNAVAILABLE whose
        record was already buffered: committed twice after the client's retry). A roll syncs the file it closes.
        """
        with self._lock:
            last, fd = self.last_lsn, os.dup(self._file.fileno()) if self._file is not None else None
        if fd is not None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return last

    def sync(self, lsn: int) -> None:
        """Return once `lsn` is on disk (fsync = "always"); other policies return at once."""
        if self.settings.fsync != "always":
            return
        with self._synced:
            while self._synced_lsn < lsn:
                if self._syncing:
                    self._synced.wait()
                    continue
                self._syncing = True
                self._synced.release()
                try:
                    target = self._sync_current()
                except OSError as exc:
                    raise WalError(f"cannot fsync the WAL in {self.dir}: {exc}") from exc
                finally:
                    self._synced.acquire()
                    self._syncing = False
                    self._synced.notify_all()
                self._synced_lsn = max(self._synced_lsn, target)

    def _sync_every_interval(self) -> None:
        while not self._stop.wait(self.settings.fsync_interval_ms / 1000):
            try:
                self._sync_current()
            except OSError as exc:
                log.error("periodic WAL fsync failed", extra={"error": repr(exc)})

    # -- trimming -----------------------------------------------------------------------------------------------

    def trim(self, committed_through: int) -> int:
        """Delete closed segments whose records all have LSN <= `committed_through`; return how many.

        The files are unlinked after the lock is let go, so appends do not wait for it: a commit interval's
        segments at saturation are about two GiB, and unlinking 30 segments of 64 MiB took 0.44 s here (ext4
        mounted with `discard`, ad hoc). A crash before the unlink leaves segments that replay skips, since
        their rows are committed."""
        with self._lock:
            done = [first for first, last in self._segments.items() if last <= committed_through]
            for first in done:
                del self._segments[first]
        for first in done:
            (self.dir / _segment_name(first)).unlink(missing_ok=True)
        return len(done)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.segments())

    def close(self) -> None:
        self._stop.set()
        if self._interval is not None:
            self._interval.join()
        with self._lock:
            if self._file is not None:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
                self._segments[self._segment_first] = self._segment_last
                self._file = None
