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
import pathlib
import re
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.fs as pafs

from otlp2parquet.buffer import Drained
from otlp2parquet.config import WriterSettings
from otlp2parquet.disk import fsync_path
from otlp2parquet.errors import TransientWriteError
from otlp2parquet.schemas import TABLES
from otlp2parquet.writer.base import Staged, WriteResult
from otlp2parquet.writer.files import MICROS_PER_HOUR, content_hash, encode, merge_sorted, split

log = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
STATE_DIR = "_otlp2parquet"


def service_segment(service: str | None) -> str:
    """A path-safe directory name for a service ('unknown' when empty)."""
    cleaned = _UNSAFE.sub("_", service or "")
    return cleaned if cleaned.strip("._") else "unknown"


class ParquetWriter:
    """Files under `base_path`: a local directory, or `s3://`, `gs://`, `abfs://` through pyiceberg's FileIO
    properties (endpoint, region, keys), so plain Parquet mode and the Iceberg warehouse share one storage config."""

    def __init__(self, table: str, settings: WriterSettings, writer_id: str,
                 storage: dict[str, str] | None = None) -> None:
        self.spec = TABLES[table]
        self.settings = settings
        self.writer_id = service_segment(writer_id)
        if "://" in settings.base_path:
            from pyiceberg.io.pyarrow import PyArrowFileIO

            from otlp2parquet.writer.catalogs import filesystem

            self.fs, path = filesystem(PyArrowFileIO(storage or {}), settings.base_path)
            self.root, self._scheme = path.rstrip("/"), settings.base_path.split("://", 1)[0] + "://"
        else:
            self.fs: pafs.FileSystem = pafs.LocalFileSystem()
            self.root, self._scheme = str(pathlib.Path(settings.base_path).resolve()), ""
        self._local = isinstance(self.fs, pafs.LocalFileSystem)

    def _directory(self, service: str | None, hour_micros: int) -> str:
        hour = dt.datetime.fromtimestamp(hour_micros / 1e6, tz=dt.UTC)
        parts = [self.root, self.spec.signal]
        if self.spec.metric_type:
            parts.append(self.spec.metric_type)
        if self.settings.partition_by_service:
            parts.append(service_segment(service))
        parts += [f"year={hour:%Y}", f"month={hour:%m}", f"day={hour:%d}", f"hour={hour:%H}"]
        return "/".join(parts)

    def _exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def _put(self, path: str, data: bytes, temp_suffix: str) -> None:
        """Readers never see half a file: a local file is renamed into place, an object appears on close."""
        if not self._local:  # an object store has no directories (creating them leaves marker objects)
            with self.fs.open_output_stream(path) as out:
                out.write(data)
            return
        directory, name = path.rsplit("/", 1)
        self.fs.create_dir(directory, recursive=True)
        # A leading dot: Spark, Hive and DuckDB globs skip it while it is being written.
        target = f"{directory}/.{name}.{temp_suffix}.tmp"
        with self.fs.open_output_stream(target) as out:
            out.write(data)
        fsync_path(target)  # on disk before the name says the file is complete
        self.fs.move(target, path)
        fsync_path(directory)

    def _state(self, kind: str) -> str:
        return f"{self.root}/{STATE_DIR}/{self.spec.name}.{self.writer_id}.{kind}.json"

    def _get_state(self, kind: str) -> dict | None:
        path = self._state(kind)
        if not self._exists(path):
            return None
        with self.fs.open_input_stream(path) as stream:
            return json.loads(stream.read())

    def _put_state(self, kind: str, value: dict[str, object]) -> None:
        self._put(self._state(kind), json.dumps(value).encode(), "state")

    def committed_lsn(self) -> int:
        """Settle an interrupted flush, then return the committed watermark."""
        intent = self._get_state("intent")
        if intent is not None:
            present = [p for p in intent["paths"] if self._exists(p)]
            if len(present) == len(intent["paths"]):
                self._put_state("committed", {"lsn": intent["lsn"]})
            else:
                for p in present:
                    self.fs.delete_file(p)
            self.fs.delete_file(self._state("intent"))
        committed = self._get_state("committed")
        return committed["lsn"] if committed is not None else 0

    def stage(self, drained: Drained, flush_id: str) -> Staged:
        """Plain files are final once written: staging is the whole job."""
        committed = self.committed_lsn()  # after a failed flush, some returned rows may be written already
        batches = [b for b, lsn in zip(drained.batches, drained.lsns, strict=True) if lsn > committed]
        if not batches:
            return Staged(self.spec.name, [], 0, 0, drained.watermark)
        table = merge_sorted(self.spec, batches)
        files: list[tuple[str, bytes]] = []
        for hour, service, rows in split(table, self.spec.time_column, MICROS_PER_HOUR,
                                         self.settings.partition_by_service):
            data = encode(rows, self.spec, self.settings)
            first = rows.column(self.spec.time_column).cast(pa.int64())[0].as_py()
            files.append((f"{self._directory(service, hour * MICROS_PER_HOUR)}/{first}-{content_hash(data)}.parquet",
                          data))
        try:
            self._put_state("intent", {"lsn": drained.watermark, "paths": [p for p, _ in files]})
            for path, data in files:
                if not self._exists(path):
                    self._put(path, data, flush_id)
            self._put_state("committed", {"lsn": drained.watermark})
            self.fs.delete_file(self._state("intent"))
        except OSError as exc:
            raise TransientWriteError(f"writing {self.spec.name} Parquet files failed: {exc}") from exc
        return Staged(self.spec.name, [self._scheme + p for p, _ in files], sum(len(d) for _, d in files),
                      table.num_rows, drained.watermark)

    def commit(self, staged: Sequence[Staged], commit_id: str) -> WriteResult:
        return WriteResult.of(self.spec.name, staged, committed_to_catalog=False)

    def write(self, drained: Drained, flush_id: str) -> WriteResult:
        return self.commit([self.stage(drained, flush_id)], flush_id)

    def close(self) -> None:
        """Nothing is held open between flushes."""
