"""Encoding a flush with and without statistics inside lists and maps, timed in alternating rounds.

    python -m bench.encode_bench [--requests 32] [--rounds 5] [--write-results]

This VM's speed drifts by up to 2x within minutes, so benchmarks run minutes apart cannot compare two ways of
encoding. Here both encode the same sorted flush of every table in one process, round after round in turn,
and each reports its best round.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import pyarrow as pa

from bench.results import report
from bench.workload import requests
from otlp2parquet.config import WriterSettings
from otlp2parquet.convert import CONVERTERS
from otlp2parquet.schemas import TABLES, TableSpec, arrow_schema_with_ids
from otlp2parquet.schemas.types import parquet_leaves
from otlp2parquet.writer import files


@contextmanager
def _statistics_everywhere() -> Iterator[None]:
    """What the writers did before: min/max statistics on every Parquet column."""
    chosen = files.statistics_columns
    files.statistics_columns = lambda spec: [leaf.path for leaf in parquet_leaves(spec.fields)]
    try:
        yield
    finally:
        files.statistics_columns = chosen


VARIANTS: dict[str, Callable[[], AbstractContextManager[None]]] = {
    "statistics outside lists and maps (the writers)": nullcontext,
    "statistics on every column": _statistics_everywhere,
}


def flushes(count: int) -> dict[str, pa.Table]:
    """One sorted flush of `count` 1,000-item requests for every table."""
    batches: dict[str, list[pa.RecordBatch]] = {}
    for signal in ("traces", "logs", "metrics"):
        for payload in requests(signal, 1000, count, seed=1):
            for table, batch in CONVERTERS[signal](payload).batches.items():
                batches.setdefault(table, []).append(batch)
    return {table: files.merge_sorted(TABLES[table], b) for table, b in batches.items()}


def _encode_cpu_s(data: pa.Table, spec: TableSpec, schema: pa.Schema) -> tuple[float, int]:
    start = time.process_time()
    size = len(files.encode(data, spec, WriterSettings(), schema))
    return time.process_time() - start, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32, help="1,000-item requests in each flush")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    lines = ["| table | rows | variant | best CPU µs per row | bytes per row |", "|---|---|---|---|---|"]
    for table, data in flushes(args.requests).items():
        spec, schema = TABLES[table], arrow_schema_with_ids(table)
        best = {name: (float("inf"), 0) for name in VARIANTS}
        for _ in range(args.rounds):
            for name, variant in VARIANTS.items():
                with variant():
                    seconds, size = _encode_cpu_s(data, spec, schema)
                best[name] = (min(best[name][0], seconds), size)
        for name, (seconds, size) in best.items():
            lines.append(f"| {table} | {data.num_rows:,} | {name} | {seconds / data.num_rows * 1e6:.2f} | "
                         f"{size / data.num_rows:.1f} |")
    report(lines, args.write_results, f"Encoding with and without nested statistics ({args.requests} x 1000 items)",
           "bench.encode_bench", f"best of {args.rounds} alternating rounds per variant, one process, zstd level 1")


if __name__ == "__main__":
    main()
