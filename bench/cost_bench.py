"""Where an item's CPU goes, step by step, in one process: convert, WAL record, sort a flush, encode Parquet.

    python -m bench.cost_bench [--signal traces] [--requests 64] [--write-results]

The load harness measures the sidecar as a whole; this splits the per-item cost into the steps that are ours,
so that the end-to-end figure can be explained. A flush here is `--requests` requests of 1,000 items (64 is
about one 64 MiB traces flush). Process CPU time, best of three rounds; gRPC, locking and commits are not in it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from bench.results import report
from bench.workload import requests
from otlp2parquet.config import WriterSettings
from otlp2parquet.convert import CONVERTERS
from otlp2parquet.schemas import TABLES
from otlp2parquet.wal.codec import header as wal_header
from otlp2parquet.writer.files import encode, merge_sorted


def _best_cpu_s(step: Callable[[], object]) -> float:
    times = []
    for _ in range(3):
        start = time.process_time()
        step()
        times.append(time.process_time() - start)
    return min(times)


def costs(signal: str, count: int, items: int = 1000) -> dict[str, float]:
    """Microseconds of CPU per item for each step, for `count` requests of `items` items."""
    payloads = list(requests(signal, items, count, seed=1))
    results = [CONVERTERS[signal](p) for p in payloads]
    total = sum(r.accepted for r in results)
    by_table: dict[str, list] = {}
    for r in results:
        for table, batch in r.batches.items():
            by_table.setdefault(table, []).append(batch)
    settings = WriterSettings()
    steps: dict[str, Callable[[], object]] = {
        "convert (decode + flatten)": lambda: [CONVERTERS[signal](p) for p in payloads],
        "WAL record header (checksum)": lambda: [wal_header(i, signal, p) for i, p in enumerate(payloads)],
        "sort the flush": lambda: [merge_sorted(TABLES[t], b) for t, b in by_table.items()],
        "encode Parquet (zstd, dictionaries, statistics)": lambda: [
            encode(merge_sorted(TABLES[t], b), TABLES[t], settings) for t, b in by_table.items()],
    }
    per_item = {name: _best_cpu_s(step) / total * 1e6 for name, step in steps.items()}
    per_item["encode Parquet (zstd, dictionaries, statistics)"] -= per_item["sort the flush"]
    return per_item


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signal", choices=sorted(CONVERTERS), default="traces")
    parser.add_argument("--requests", type=int, default=64, help="1,000-item requests in the flush")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    per_item = costs(args.signal, args.requests)
    total = sum(per_item.values())
    table = ["| step | CPU µs per item | share of these steps |", "|---|---|---|"]
    table += [f"| {name} | {us:.2f} | {us / total:.0%} |" for name, us in per_item.items()]
    table.append(f"| all of the above | {total:.2f} | = {1e6 / total:,.0f} items per CPU-s at best |")
    report(table, args.write_results, f"Cost per item by step ({args.signal}, {args.requests} x 1000 items)",
           "bench.cost_bench", "process CPU time of one process, best of 3 rounds")


if __name__ == "__main__":
    main()
