"""Build the `Drained` a flush hands to a writer, for writer tests."""

from __future__ import annotations

import pyarrow as pa

from otlp2parquet.buffer import Drained, arrow_bytes


def drained(table: str, batches: list[pa.RecordBatch], first_lsn: int = 1) -> Drained:
    lsns = list(range(first_lsn, first_lsn + len(batches)))
    return Drained(table, batches, lsns, lsns[-1], sum(b.num_rows for b in batches),
                   sum(arrow_bytes(b) for b in batches), "test")
