"""Process memory: make RSS follow what the buffer holds, so the memory budget bounds the process.

Under load, with Arrow's default mimalloc pool and glibc's defaults, RSS was several times the bytes Arrow had
allocated (compare `otlp2parquet_arrow_allocated_bytes` with RSS). Freed memory stayed in allocator caches: mimalloc's
per-thread heaps, glibc's per-thread arenas, and the heap top that glibc trims only past a threshold. So Arrow
allocates through the system allocator (set before pyarrow is imported), arenas are capped, and a periodic
`malloc_trim` hands free pages back. None of this helps with pages pinned by many small long-lived buffers (the
same with every allocator, measured): the buffer merges those (`Buffer.compact`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time

_M_ARENA_MAX = -8
_libc: ctypes.CDLL | None = None


def configure() -> None:
    """Call before pyarrow is imported. A no-op for settings the operator made in the environment."""
    global _libc
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "malloc_trim"):  # glibc only
            _libc = libc
            if "MALLOC_ARENA_MAX" not in os.environ:
                libc.mallopt(_M_ARENA_MAX, 2)
    except OSError:
        _libc = None


class Trimmer:
    """Calls malloc_trim at most once per `interval_s`; cheap to call often."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._last = 0.0

    def maybe_trim(self) -> None:
        now = time.monotonic()
        if _libc is not None and now - self._last >= self.interval_s:
            self._last = now
            _libc.malloc_trim(0)
