"""Memory held by buffered batches: RSS growth against Arrow bytes, with and without merging, per Arrow pool.

    python -m bench.retained_bench [--signal metrics] [--requests 400] [--write-results]

The buffer keeps one small batch per request per table until a flush. This converts `--requests` requests of
1,000 items into a real `Buffer` and keeps them, in a fresh process per configuration (the pool is chosen before
pyarrow is imported), then reports Arrow's allocated bytes and how much RSS grew, after a `malloc_trim`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
import time

from bench.results import report

POOLS = ("system", "jemalloc", "mimalloc")


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1)) / 1024


def _child(signal: str, count: int, merge: bool) -> dict[str, float]:
    import pyarrow as pa

    from bench.workload import requests
    from otlp2parquet import memory  # configures the allocator before pyarrow loads
    from otlp2parquet.buffer import Buffer
    from otlp2parquet.config import BufferSettings
    from otlp2parquet.convert import CONVERTERS

    payloads = list(requests(signal, 1000, 20, seed=1))
    CONVERTERS[signal](payloads[0])  # warm up before the baseline
    buffer = Buffer(BufferSettings(memory_budget_bytes=1 << 40, max_rows=1 << 40, max_bytes=1 << 40))
    gc.collect()
    memory.Trimmer(0).maybe_trim()
    rss, arrow, merge_cpu = _rss_mib(), pa.total_allocated_bytes(), 0.0
    for i in range(count):
        batches = CONVERTERS[signal](payloads[i % len(payloads)]).batches
        buffer.offer(batches)
        if merge:
            started = time.process_time()
            for table in batches:
                buffer.compact(table)
            merge_cpu += time.process_time() - started
    gc.collect()
    memory.Trimmer(0).maybe_trim()
    return {"arrow_mib": (pa.total_allocated_bytes() - arrow) / 2**20, "rss_mib": _rss_mib() - rss,
            "merge_us_per_item": merge_cpu / (count * 1000) * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signal", choices=("logs", "metrics", "traces"), default="metrics")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("POOL", "MERGE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.signal, args.requests, args.child[1] == "merge")))
        return
    table = ["| Arrow pool | batches | Arrow MiB held | RSS growth MiB | RSS / Arrow | merge CPU µs per item |",
             "|---|---|---|---|---|---|"]
    for pool in POOLS:
        for merge in ("as offered", "merge"):
            out = subprocess.run([sys.executable, "-m", "bench.retained_bench", "--signal", args.signal,
                                  "--requests", str(args.requests), "--child", pool, merge], check=True,
                                 capture_output=True, text=True, env={**os.environ, "ARROW_DEFAULT_MEMORY_POOL": pool})
            r = json.loads(out.stdout.splitlines()[-1])
            table.append(f"| {pool} | {'merged in runs of 16' if merge == 'merge' else merge} | {r['arrow_mib']:.0f} "
                         f"| {r['rss_mib']:.0f} | {r['rss_mib'] / r['arrow_mib']:.1f} | {r['merge_us_per_item']:.2f} |")
    report(table, args.write_results, f"Memory held by buffered batches ({args.signal}, {args.requests} x 1000 items)",
           "bench.retained_bench", "one process per row; RSS and Arrow bytes measured after gc and malloc_trim")


if __name__ == "__main__":
    main()
