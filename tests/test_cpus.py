"""The CPUs the sidecar sizes its conversion processes and the flush's take and encoding threads by."""

from __future__ import annotations

import os
import subprocess
import sys

from otlp2parquet.cpus import usable_cpus
from otlp2parquet.writer.files import THREADS_MAX


def _child(code: str) -> list[str]:
    """What a fresh interpreter prints: the take threads are made once per process, at import."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()


def test_usable_cpus_follow_the_process_affinity() -> None:
    assert 1 <= usable_cpus() <= len(os.sched_getaffinity(0))


def test_a_flush_takes_and_encodes_on_one_thread_per_usable_cpu_and_on_the_flush_thread_with_one() -> None:
    # A process held to one CPU (taskset, or the load harness's --cpus 1) gains nothing from a second thread.
    pinned = _child("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
                    "from otlp2parquet.cpus import usable_cpus\n"
                    "from otlp2parquet.writer.files import FLUSH_THREADS, TAKERS\n"
                    "print(usable_cpus(), FLUSH_THREADS, TAKERS)")
    assert pinned == ["1", "1", "None"], pinned
    free = _child("from otlp2parquet.writer.files import FLUSH_THREADS, TAKERS\n"
                  "print(FLUSH_THREADS, TAKERS and TAKERS._max_workers)")
    threads = min(usable_cpus(), THREADS_MAX)
    assert free == [str(threads), str(threads) if threads > 1 else "None"], free
