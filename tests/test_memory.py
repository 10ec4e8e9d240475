"""Allocator set-up (Arrow uses the system allocator unless the operator chose another) and the trimmer that
reports when resident memory stays above the limit."""

from __future__ import annotations

import os
import subprocess
import sys

from otlp2parquet import memory

PROBE = "import otlp2parquet, pyarrow; print(pyarrow.default_memory_pool().backend_name)"


def _backend(**env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"} | env
    return subprocess.run([sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_arrow_allocates_through_the_system_allocator_so_trimming_returns_memory() -> None:
    assert _backend() == "system"


def test_an_operator_choice_of_arrow_pool_wins() -> None:
    assert _backend(ARROW_DEFAULT_MEMORY_POOL="jemalloc") == "jemalloc"


def test_the_trimmer_reports_rss_only_while_it_is_above_the_limit() -> None:
    rss = memory.rss_bytes()
    assert 10 * 1024 * 1024 < rss < 64 * 1024 * 1024 * 1024
    assert memory.Trimmer(limit_bytes=1024 * 1024).maybe_trim() is not None, "no process fits in 1 MiB"
    assert memory.Trimmer(limit_bytes=64 * rss).maybe_trim() is None
    assert memory.Trimmer(limit_bytes=0).maybe_trim() is None, "0 turns the limit off"
