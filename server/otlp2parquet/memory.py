"""Process memory: make RSS follow what the buffer holds, so the memory budget bounds the process.

Under load, with Arrow's default mimalloc pool and glibc's defaults, RSS was several times the bytes Arrow had
allocated (compare `otlp2parquet_arrow_allocated_bytes` with RSS). Freed memory stayed in allocator caches: mimalloc's
per-thread heaps, glibc's per-thread arenas, and the heap top that glibc trims only past a threshold. So Arrow
allocates through the system allocator (set before pyarrow is imported), arenas are capped, and a periodic
`malloc_trim` hands free pages back. None of this helps with pages pinned by many small long-lived buffers (the
same with every allocator, measured): the buffer merges those (`Buffer.compact`). Above the process's memory
limit, trims come as often as every 50 ms and the buffer refuses exports until RSS is back below it, as the
Collector's memory_limiter does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time

_M_ARENA_MAX = -8
_PAGE = os.sysconf("SC_PAGE_SIZE")
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


def rss_bytes() -> int:
    """This process's resident memory, as the kernel (and a container's memory limit) counts it."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * _PAGE


class Trimmer:
    """Calls malloc_trim at most once per `interval_s`, or at most once per `urgent_s` while RSS is above
    `limit_bytes`; cheap to call often.

    Between trims, freed pages are touched again as the heap reuses them: under load RSS climbed about 200 MiB
    within the second between trims (ad hoc, 8,192-point metrics requests), while the bytes in use stayed flat.
    Trimming at every call costs page faults all the time; trimming only above the limit costs them only there.
    """

    def __init__(self, interval_s: float = 1.0, limit_bytes: int = 0, urgent_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.limit_bytes = limit_bytes
        self.urgent_s = urgent_s
        self._last = 0.0
        self._trim_failed = False  # the last trim above the limit left RSS above it

    def maybe_trim(self) -> int | None:
        """Trim if due; RSS if it is above the limit and the latest trim did not bring it below, else None.
        (Above the limit between two trims is not enough: the next trim is at most `urgent_s` away.)"""
        now = time.monotonic()
        rss = rss_bytes() if self.limit_bytes else 0
        over = rss > self.limit_bytes > 0
        if _libc is not None and now - self._last >= (self.urgent_s if over else self.interval_s):
            self._last = now
            _libc.malloc_trim(0)
            if over:
                rss = rss_bytes()
                self._trim_failed = rss > self.limit_bytes
        if _libc is None:
            self._trim_failed = over
        if not over:
            self._trim_failed = False
        return rss if over and self._trim_failed else None
