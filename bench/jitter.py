"""How steady this machine runs a fixed amount of work: the context for any p99 latency measured on it.

Times the same CPU-bound task many times in one otherwise idle process (no I/O, no other threads): a fixed
hash (native code, no allocation) and the conversion of one 1,000-span traces request. On a steady machine p99
is close to p50; on a shared VM, steal and frequency changes stretch the tail. An export cannot have a p99 below
its conversion's p99 here, whatever the sidecar does around it.

    python -m bench.jitter [--repeats 300] [--write-results]
"""

from __future__ import annotations

import argparse
import hashlib
import pathlib
import time
from collections.abc import Callable

from bench.results import report

BLOCK = b"\x5a" * (4 << 20)


def _steal_ticks() -> tuple[int, int]:
    """(steal, total) ticks of all CPUs from /proc/stat."""
    fields = [int(f) for f in pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return fields[7] if len(fields) > 7 else 0, sum(fields)


def spread(task: Callable[[], object], repeats: int) -> dict[str, float]:
    """Milliseconds per run of `task`: p50, p90, p99 and max over `repeats` runs (after one warm-up run)."""
    task()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        task()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]  # noqa: E731
    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": times[-1]}


def tasks() -> dict[str, Callable[[], object]]:
    from bench.workload import requests
    from otlp2parquet.convert import convert_traces

    request = next(requests("traces", 1000, 1))
    return {"sha256 of 16 MiB (native, no allocation)": lambda: [hashlib.sha256(BLOCK).digest() for _ in range(4)],
            "convert one 1,000-span traces request": lambda: convert_traces(request)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    steal_before, total_before = _steal_ticks()
    rows = []
    for name, task in tasks().items():
        s = spread(task, args.repeats)
        rows.append(f"| {name} | {s['p50']:.1f} | {s['p90']:.1f} | {s['p99']:.1f} | {s['max']:.1f} | "
                    f"{s['p99'] / s['p50']:.2f} |")
    steal_after, total_after = _steal_ticks()
    steal = (steal_after - steal_before) / max(1, total_after - total_before)
    table = ["| task, one thread, idle machine | p50 ms | p90 ms | p99 ms | max ms | p99 / p50 |",
             "|---|---|---|---|---|---|", *rows, "", f"- CPU time stolen by the hypervisor meanwhile: {steal:.1%}"]
    report(table, args.write_results, "Run-to-run jitter of fixed work", "bench.jitter",
           f"{args.repeats} timed runs of each task in one process, nothing else running")


if __name__ == "__main__":
    main()
