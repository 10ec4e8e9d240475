"""Append latency over many commits, with and without snapshot expiry.

    python -m bench.maintenance_bench [--commits 200] [--rows 5000] [--write-results]

pyiceberg's append cost grows with the number of retained snapshots; `otlp2parquet maintain` expires them. Each
run commits `--commits` flushes of `--rows` spans through the sidecar's Iceberg writer (one per flush, like the
sidecar) and reports the median flush latency of the first and the last 25 commits. With expiry, maintenance
runs every 10 commits keeping the newest 10 snapshots.
"""

from __future__ import annotations

import argparse
import datetime as dt
import pathlib
import statistics
import tempfile
import time

from bench.results import append
from bench.workload import requests
from otlp2parquet.buffer import Drained, arrow_bytes
from otlp2parquet.config import load_settings
from otlp2parquet.convert import convert_traces
from otlp2parquet.maintenance import expire_snapshots
from otlp2parquet.writer.catalogs import build_catalog
from otlp2parquet.writer.iceberg import IcebergWriter


def run(commits: int, rows: int, expire: bool) -> tuple[float, float, int]:
    base = pathlib.Path(tempfile.mkdtemp(prefix="otlp2parquet-maint-"))
    settings = load_settings(overrides={"writer": {"base_path": str(base)}}, environ={})
    catalog = build_catalog(settings)
    catalog.create_namespace_if_not_exists("otel")
    writer = IcebergWriter("traces", catalog, settings, "bench")
    batch = convert_traces(next(requests("traces", rows, 1, seed=5))).batches["traces"]
    latencies = []
    for i in range(1, commits + 1):
        started = time.perf_counter()
        writer.write(Drained("traces", [batch], [i], i, batch.num_rows, arrow_bytes(batch), "bench"), f"flush-{i}")
        latencies.append(time.perf_counter() - started)
        if expire and i % 10 == 0:
            expire_snapshots(catalog.load_table("otel.traces"), dt.timedelta(0), keep_last=10, dry_run=False)
    snapshots = len(catalog.load_table("otel.traces").snapshots())
    return statistics.median(latencies[:25]), statistics.median(latencies[-25:]), snapshots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=200)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    lines = ["| snapshot expiry | median flush, commits 1-25 | median flush, last 25 | snapshots kept |",
             "|---|---|---|---|"]
    for expire in (False, True):
        first, last, kept = run(args.commits, args.rows, expire)
        lines.append(f"| {'every 10 commits, keep 10' if expire else 'none'} | {first * 1000:.0f} ms | "
                     f"{last * 1000:.0f} ms | {kept} |")
        print(lines[-1], flush=True)
    if args.write_results:
        append("Append latency and snapshot expiry",
               f"python -m bench.maintenance_bench --commits {args.commits} --rows {args.rows}",
               f"embedded SQLite catalog, one {args.rows}-span flush per commit", lines)

if __name__ == "__main__":
    main()
