"""Turning a flush into Parquet: merge the batches, sort them, split them by partition, encode with zstd."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq  # first: it loads the Arrow C++ libraries that _encode links against

from otlp2parquet.config import WriterSettings
from otlp2parquet.cpus import usable_cpus
from otlp2parquet.schemas import TableSpec
from otlp2parquet.schemas.types import parquet_leaves
from otlp2parquet.writer import _encode

MICROS_PER_HOUR = 3_600_000_000
MICROS_PER_DAY = 24 * MICROS_PER_HOUR


THREADS_MAX = 4  # a flush's time is in two or three wide columns: more threads would find nothing to do
# Threads that take a flush's columns in sort order and encode them, one per usable CPU up to THREADS_MAX. On two
# CPUs a saturated sidecar is limited by its one flush thread, and both steps work column by column without the GIL.
FLUSH_THREADS = min(usable_cpus(), THREADS_MAX)


def _takers() -> ThreadPoolExecutor | None:
    """Threads for the sort's take (None with one CPU): two take a logs or traces flush's columns in about 60 % of
    the time for 3-8 % more CPU (ad hoc, 8,192-item requests)."""
    return ThreadPoolExecutor(FLUSH_THREADS, thread_name_prefix="sort-take") if FLUSH_THREADS > 1 else None


# Made once, at import (its threads start with its first take): flush and maintenance threads share it.
TAKERS = _takers()


def merge_sorted(spec: TableSpec, batches: list[pa.RecordBatch]) -> pa.Table:
    """All of a flush's batches as one table, in the table's sort order (pyiceberg does not sort on write)."""
    table = pa.Table.from_batches(batches)  # no combine_chunks: that would be a third copy at the flush's peak
    # Sorting the (small) key columns as one chunk and taking once is up to 2x faster than `sort_by`, which
    # sorts chunk by chunk and merges.
    keys = table.select(list(spec.sort_columns)).combine_chunks()
    indices = pc.sort_indices(keys, sort_keys=[(column, "ascending") for column in spec.sort_columns])
    if TAKERS is None:
        return table.take(indices)
    return pa.Table.from_arrays(list(TAKERS.map(lambda column: column.take(indices), table.columns)),
                                schema=table.schema)


def split(table: pa.Table, time_column: str, micros_per_bucket: int,
          by_service: bool) -> Iterator[tuple[int, str | None, pa.Table]]:
    """Yield (time bucket, service or None, rows) groups; each group becomes one file in one partition."""
    buckets = np.floor_divide(table.column(time_column).cast(pa.int64()).to_numpy(), micros_per_bucket)
    if by_service:
        encoded = pc.dictionary_encode(table.column("ServiceName")).combine_chunks()
        names = encoded.dictionary.to_pylist()
        codes = encoded.indices.to_numpy().astype(np.int64)
    else:
        names, codes = [None], np.zeros(len(buckets), dtype=np.int64)
    groups = (buckets - buckets.min(initial=0)) * len(names) + codes if len(buckets) else buckets
    for group in np.unique(groups).tolist():
        mask = groups == group
        first = int(np.argmax(mask))
        rows = table if mask.all() else table.filter(pa.array(mask))
        yield int(buckets[first]), names[codes[first]], rows


def column_encodings(spec: TableSpec) -> tuple[list[str], dict[str, str]]:
    """The Parquet columns that get a dictionary, and the encodings of the others that are not PLAIN.

    Timestamps take DELTA_BINARY_PACKED: sorted within a service, or close to their row's start time, their
    deltas need a few bytes where the dictionary or plain value needs eight. Columns the contract marks
    unique (ids, durations) go without a dictionary, which would only grow to its size limit and be dropped;
    unique strings take DELTA_LENGTH_BYTE_ARRAY, which stores the lengths apart from the text, so zstd does
    not have to code a four-byte length between every pair of ids (about 0.8 bytes per id smaller).
    """
    dictionary, encodings = [], {}
    for path, kind, unique, _ in parquet_leaves(spec.fields):
        if kind == "timestamptz":
            encodings[path] = "DELTA_BINARY_PACKED"
        elif unique and kind == "string":
            encodings[path] = "DELTA_LENGTH_BYTE_ARRAY"
        elif not unique:
            dictionary.append(path)
    return dictionary, encodings


def statistics_columns(spec: TableSpec) -> list[str]:
    """The Parquet columns that get min/max statistics: those outside lists and maps.

    Readers prune files and row groups with a column's bounds; the bounds of a map's entries or a list's
    elements mix every row's entries and seldom prune anything (pyiceberg does not even put them in manifests),
    yet computing them took 12-17 % of encoding a flush, whose attribute maps are most of each row.
    """
    return [leaf.path for leaf in parquet_leaves(spec.fields) if not leaf.repeated]


def encode(table: pa.Table, spec: TableSpec, settings: WriterSettings, schema: pa.Schema | None = None,
           threads: int = FLUSH_THREADS) -> bytes:
    """Parquet bytes: zstd, statistics where readers prune with them, and each column's encoding.

    The file is what `pq.write_table` writes with these settings (`pq_encode`), but with `threads` > 1 a row
    group's columns are encoded side by side (see _encode.cpp): 1.4-1.7 times faster for a traces or logs flush
    on two threads (ad hoc).
    """
    if schema is not None:
        table = table.cast(schema)
    dictionary, encodings = column_encodings(spec)
    return _encode.parquet(table.__arrow_c_stream__(), settings.compression_level, settings.row_group_rows,
                           dictionary, statistics_columns(spec), encodings, threads)


def pq_encode(table: pa.Table, spec: TableSpec, settings: WriterSettings) -> bytes:
    """The same file through pyarrow's own writer, one column after another: what `encode` must equal."""
    dictionary, encodings = column_encodings(spec)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", compression_level=settings.compression_level,
                   write_statistics=statistics_columns(spec), use_dictionary=dictionary, column_encoding=encodings,
                   row_group_size=settings.row_group_rows)
    return sink.getvalue().to_pybytes()


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]
