"""Allocator set-up (Arrow uses the system allocator unless the operator chose another) and the trimmer that
reports when resident memory stays above the limit."""

from __future__ import annotations

import os
import pathlib
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


def _thp(tmp_path: pathlib.Path, mode: str) -> str:
    path = tmp_path / "enabled"
    path.write_text(mode + "\n")
    return str(path)


def test_huge_pages_are_asked_of_glibc_once_and_other_tunables_are_kept(tmp_path: pathlib.Path) -> None:
    madvise = _thp(tmp_path, "always [madvise] never")
    environ = memory.huge_pages_environment({"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, madvise)
    assert environ is not None
    assert environ["PATH"] == "/bin"
    assert environ["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert memory.huge_pages_environment(environ, madvise) is None, "the restarted process must not restart again"
    fresh = memory.huge_pages_environment({}, madvise)
    assert fresh is not None and fresh["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"


def test_no_restart_when_the_kernel_or_the_operator_says_no(tmp_path: pathlib.Path) -> None:
    assert memory.huge_pages_environment({}, _thp(tmp_path, "always madvise [never]")) is None
    assert memory.huge_pages_environment({}, str(tmp_path / "no-thp-here")) is None
    operator = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}
    assert memory.huge_pages_environment(operator, _thp(tmp_path, "[always] madvise never")) is None
