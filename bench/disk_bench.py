"""Bytes on disk per item, column by column, for one flush of the reference workload.

    python -m bench.disk_bench [--signal traces] [--requests 32] [--top 10] [--write-results]

The load harness reports the total; this says which columns it goes to, so the on-disk target can be judged
against what the data holds (random ids and timestamps cannot compress below their own size). One flush of
`--requests` distinct 1,000-item requests is sorted and encoded exactly as the writers do.
"""

from __future__ import annotations

import argparse

import pyarrow as pa
import pyarrow.parquet as pq

from bench.results import report
from bench.workload import requests
from otlp2parquet.config import WriterSettings
from otlp2parquet.convert import CONVERTERS
from otlp2parquet.schemas import TABLES, arrow_schema_with_ids
from otlp2parquet.writer.files import encode, merge_sorted


def bytes_by_column(table: str, count: int, items: int = 1000) -> tuple[int, dict[str, int]]:
    """(rows, compressed bytes per Parquet leaf column) for one flush of `table`."""
    signal = TABLES[table].signal
    batches = [CONVERTERS[signal](p).batches[table] for p in requests(signal, items, count, seed=1)]
    data = merge_sorted(TABLES[table], batches)
    meta = pq.ParquetFile(pa.BufferReader(encode(data, TABLES[table], WriterSettings(),
                                                 arrow_schema_with_ids(table)))).metadata
    sizes: dict[str, int] = {}
    for group in range(meta.num_row_groups):
        for i in range(meta.num_columns):
            chunk = meta.row_group(group).column(i)
            sizes[chunk.path_in_schema] = sizes.get(chunk.path_in_schema, 0) + chunk.total_compressed_size
    return data.num_rows, sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signal", choices=["traces", "logs"], default="traces")
    parser.add_argument("--requests", type=int, default=32, help="1,000-item requests in the flush")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    rows, sizes = bytes_by_column(args.signal, args.requests)
    total = sum(sizes.values())
    ranked = sorted(sizes.items(), key=lambda kv: -kv[1])
    table = ["| Parquet column | bytes per item | share |", "|---|---|---|"]
    table += [f"| `{column}` | {size / rows:.2f} | {size / total:.0%} |" for column, size in ranked[:args.top]]
    rest = sum(size for _, size in ranked[args.top:])
    table.append(f"| the other {len(ranked) - args.top} columns | {rest / rows:.2f} | {rest / total:.0%} |")
    table.append(f"| all column chunks (the file adds its footer) | {total / rows:.2f} | 100% |")
    report(table, args.write_results, f"Bytes on disk by column ({args.signal}, {args.requests} x 1000 items)",
           "bench.disk_bench", "one flush sorted and encoded as the writers do (zstd level 1, default settings)")


if __name__ == "__main__":
    main()
