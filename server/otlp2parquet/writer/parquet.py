"""Plain Parquet files in the seed's Hive-style layout, when no catalog is used.

    {base_path}/{signal}/{metric_type}/{service}/year=YYYY/month=MM/day=DD/hour=HH/{ts}-{hash}.parquet

Rows go to the hour of their own event time. A file's name is its first timestamp (µs) and a hash of its
content, so a retried flush writes the same names and a file is never half-written (temp file + rename).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import pathlib
import re

import pyarrow as pa

from otlp2parquet.config import WriterSettings
from otlp2parquet.errors import TransientWriteError
from otlp2parquet.schemas import TABLES
from otlp2parquet.writer.base import WriteResult
from otlp2parquet.writer.files import MICROS_PER_HOUR, content_hash, encode, merge_sorted, split

log = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def service_segment(service: str | None) -> str:
    """A path-safe directory name for a service ('unknown' when empty)."""
    cleaned = _UNSAFE.sub("_", service or "")
    return cleaned if cleaned.strip("._") else "unknown"


class ParquetWriter:
    def __init__(self, table: str, settings: WriterSettings) -> None:
        self.spec = TABLES[table]
        self.settings = settings
        self.root = pathlib.Path(settings.base_path)

    def _directory(self, service: str | None, hour_micros: int) -> pathlib.Path:
        hour = dt.datetime.fromtimestamp(hour_micros / 1e6, tz=dt.UTC)
        parts = [self.spec.signal]
        if self.spec.metric_type:
            parts.append(self.spec.metric_type)
        if self.settings.partition_by_service:
            parts.append(service_segment(service))
        parts += [f"year={hour:%Y}", f"month={hour:%m}", f"day={hour:%d}", f"hour={hour:%H}"]
        return self.root.joinpath(*parts)

    def write(self, batches: list[pa.RecordBatch], flush_id: str) -> WriteResult:
        table = merge_sorted(self.spec, batches)
        paths, size = [], 0
        groups = split(table, self.spec.time_column, MICROS_PER_HOUR, self.settings.partition_by_service)
        try:
            for hour, service, rows in groups:
                data = encode(rows, self.settings)
                first = rows.column(self.spec.time_column).cast(pa.int64())[0].as_py()
                directory = self._directory(service, hour * MICROS_PER_HOUR)
                path = directory / f"{first}-{content_hash(data)}.parquet"
                if not path.exists():
                    directory.mkdir(parents=True, exist_ok=True)
                    temp = path.with_name(f".{path.name}.{flush_id}.tmp")
                    temp.write_bytes(data)
                    os.replace(temp, path)
                paths.append(str(path))
                size += len(data)
        except OSError as exc:
            raise TransientWriteError(f"writing {self.spec.name} Parquet files failed: {exc}") from exc
        return WriteResult(self.spec.name, paths, size, table.num_rows, committed_to_catalog=False)

    def close(self) -> None:
        """Nothing is held open between flushes."""
