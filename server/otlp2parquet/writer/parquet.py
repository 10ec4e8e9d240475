"""Plain Parquet files in the seed's Hive-style layout, when no catalog is used.

    {base_path}/{signal}/{metric_type}/{service}/year=YYYY/month=MM/day=DD/hour=HH/{ts}-{hash}.parquet

Rows go to the hour of their own event time. A file's name is its first timestamp (µs) and a hash of its
content, so a retried flush writes the same names and a file is never half-written (temp file + rename).

Without a catalog, a small state directory (`_otlp2parquet/`) plays its part: before a flush writes its files,
an intent lists them with the flush's WAL watermark; after the last one, the watermark becomes the table's
committed watermark. A crash in between is settled at the next start: all files there means committed, some
means they are removed and the rows replayed, so every row is in exactly one file.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import pathlib
import re

import pyarrow as pa

from otlp2parquet.buffer import Drained
from otlp2parquet.config import WriterSettings
from otlp2parquet.errors import TransientWriteError
from otlp2parquet.schemas import TABLES
from otlp2parquet.writer.base import WriteResult
from otlp2parquet.writer.files import MICROS_PER_HOUR, content_hash, encode, merge_sorted, split

log = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
STATE_DIR = "_otlp2parquet"


def service_segment(service: str | None) -> str:
    """A path-safe directory name for a service ('unknown' when empty)."""
    cleaned = _UNSAFE.sub("_", service or "")
    return cleaned if cleaned.strip("._") else "unknown"


class ParquetWriter:
    def __init__(self, table: str, settings: WriterSettings, writer_id: str) -> None:
        self.spec = TABLES[table]
        self.settings = settings
        self.writer_id = service_segment(writer_id)
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

    def _state(self, kind: str) -> pathlib.Path:
        return self.root / STATE_DIR / f"{self.spec.name}.{self.writer_id}.{kind}.json"

    def _put_state(self, kind: str, value: dict[str, object]) -> None:
        path = self._state(kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(".tmp")
        temp.write_text(json.dumps(value))
        os.replace(temp, path)

    def committed_lsn(self) -> int:
        """Settle an interrupted flush, then return the committed watermark."""
        intent_path = self._state("intent")
        if intent_path.exists():
            intent = json.loads(intent_path.read_text())
            present = [p for p in intent["paths"] if pathlib.Path(p).exists()]
            if len(present) == len(intent["paths"]):
                self._put_state("committed", {"lsn": intent["lsn"]})
            else:
                for p in present:
                    pathlib.Path(p).unlink()
            intent_path.unlink()
        committed = self._state("committed")
        return json.loads(committed.read_text())["lsn"] if committed.exists() else 0

    def write(self, drained: Drained, flush_id: str) -> WriteResult:
        committed = self.committed_lsn()  # after a failed flush, some returned rows may be written already
        batches = [b for b, lsn in zip(drained.batches, drained.lsns, strict=True) if lsn > committed]
        if not batches:
            return WriteResult(self.spec.name, [], 0, 0, committed_to_catalog=False)
        table = merge_sorted(self.spec, batches)
        files: list[tuple[pathlib.Path, bytes]] = []
        for hour, service, rows in split(table, self.spec.time_column, MICROS_PER_HOUR,
                                         self.settings.partition_by_service):
            data = encode(rows, self.settings)
            first = rows.column(self.spec.time_column).cast(pa.int64())[0].as_py()
            files.append((self._directory(service, hour * MICROS_PER_HOUR) / f"{first}-{content_hash(data)}.parquet",
                          data))
        try:
            self._put_state("intent", {"lsn": drained.watermark, "paths": [str(p) for p, _ in files]})
            for path, data in files:
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    temp = path.with_name(f".{path.name}.{flush_id}.tmp")
                    temp.write_bytes(data)
                    os.replace(temp, path)
            self._put_state("committed", {"lsn": drained.watermark})
            self._state("intent").unlink()
        except OSError as exc:
            raise TransientWriteError(f"writing {self.spec.name} Parquet files failed: {exc}") from exc
        return WriteResult(self.spec.name, [str(p) for p, _ in files], sum(len(d) for _, d in files),
                           table.num_rows, committed_to_catalog=False)

    def close(self) -> None:
        """Nothing is held open between flushes."""
