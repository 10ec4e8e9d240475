"""How many CPUs this process may use: the conversion processes and the flush's sort threads are sized by it."""

from __future__ import annotations

import os
import pathlib


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity, capped by a cgroup v2 CPU quota (a Kubernetes CPU limit)."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = pathlib.Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cpus
