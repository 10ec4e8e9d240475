"""Conversion benchmark: items per second, one process (so one core), per signal and request size.

    python -m bench.convert_bench [--seconds 3] [--write-results]

Prints a table; with --write-results it appends it, with the command and the machine, to bench/RESULTS.md.
Each figure is the best of several timed rounds: this machine is a shared VM and single rounds vary by ±30 %.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from bench.baseline_walk import walk_traces
from bench.results import append, command_line
from bench.workload import requests
from otlp2parquet.convert import CONVERTERS

TARGETS = {"traces": 150_000, "logs": 250_000, "metrics": 250_000}
UNITS = {"traces": "spans", "logs": "log records", "metrics": "data points"}


def rate(convert: Callable[[bytes], object], payloads: list[bytes], items: int, seconds: float) -> tuple[float, float]:
    """Best and median items/s over rounds that together take about `seconds`."""
    convert(payloads[0])
    rounds: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(rounds) < 3:
        start = time.process_time()
        for p in payloads:
            convert(p)
        rounds.append(items * len(payloads) / (time.process_time() - start))
    rounds.sort()
    return rounds[-1], rounds[len(rounds) // 2]


def run(seconds: float) -> list[str]:
    lines = ["| signal | request size | best items/s | median items/s | target | met |", "|---|---|---|---|---|---|"]
    for signal in ("traces", "logs", "metrics"):
        for size in (1000, 8192):
            payloads = list(requests(signal, size, max(2, 16_000 // size), seed=1))
            best, median = rate(CONVERTERS[signal], payloads, size, seconds)
            met = "yes" if best >= TARGETS[signal] else "no"
            lines.append(f"| {signal} ({UNITS[signal]}) | {size} | {best:,.0f} | {median:,.0f} | "
                         f"{TARGETS[signal]:,} | {met} |")
            print(lines[-1], flush=True)
    payloads = list(requests("traces", 1000, 16, seed=1))
    best, median = rate(walk_traces, payloads, 1000, seconds)
    lines.append(f"| traces, baseline: protobuf parse + Python walk (partial columns) | 1000 | {best:,.0f} | "
                 f"{median:,.0f} | - | - |")
    print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per measurement")
    parser.add_argument("--write-results", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args()
    lines = run(args.seconds)
    if args.write_results:
        append("Conversion", command_line("bench.convert_bench"),
               "process CPU time of one process converting pre-serialized requests from bench/workload.py (seed 1)",
               lines)

if __name__ == "__main__":
    main()
