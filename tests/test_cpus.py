"""The CPUs the sidecar sizes its conversion processes and the flush's sort threads by."""

from __future__ import annotations

import os
import subprocess
import sys

from otlp2parquet.cpus import usable_cpus
from otlp2parquet.writer.files import TAKE_THREADS_MAX


def _child(code: str) -> list[str]:
    """What a fresh interpreter prints: the take threads are made once per process, at import."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()


def test_usable_cpus_follow_the_process_affinity() -> None:
    assert 1 <= usable_cpus() <= len(os.sched_getaffinity(0))


def test_the_sort_takes_columns_on_one_thread_per_usable_cpu_and_on_the_flush_thread_with_one() -> None:
    # A process held to one CPU (taskset, or the load harness's --cpus 1) gains nothing from a second take thread.
    pinned = _child("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
                    "from otlp2parquet.cpus import usable_cpus\n"
                    "from otlp2parquet.writer.files import TAKERS\n"
                    "print(usable_cpus(), TAKERS)")
    assert pinned == ["1", "None"], pinned
    free = _child("from otlp2parquet.writer.files import TAKERS; print(TAKERS and TAKERS._max_workers)")
    threads = min(usable_cpus(), TAKE_THREADS_MAX)
    assert free == [str(threads) if threads > 1 else "None"], free
