"""Iceberg writer for one table: write the flush's Parquet data files, then commit them in one fast append.

Writing the files ourselves (rather than `Table.append`) means the paths are known before the commit: a
retried commit reuses the same files instead of orphaning a set per attempt, and a commit that finally fails
can name the files it leaves behind ("Parquet is the source of truth"). Each commit carries a flush id in its
snapshot summary; after any failed attempt the table is refreshed and the id looked for, so a commit whose
response was lost (`CommitStateUnknownException`) is never appended twice.

The summary also records the writer id and the flush's WAL watermark. After a crash, `committed_lsn` tells
recovery which records this sidecar has already committed; after a failed flush, the same number tells the next
flush which of the returned rows in fact landed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import urllib.parse
from collections.abc import Sequence

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, CommitStateUnknownException, NoSuchTableError
from pyiceberg.io.pyarrow import parquet_file_to_data_file
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from otlp2parquet.buffer import Drained
from otlp2parquet.config import Settings
from otlp2parquet.errors import PermanentWriteError, TransientWriteError
from otlp2parquet.schemas import (
    TABLES,
    arrow_schema_with_ids,
    iceberg_partition_spec,
    iceberg_schema,
    iceberg_sort_order,
    table_properties,
)
from otlp2parquet.telemetry import Telemetry
from otlp2parquet.writer.base import Staged, WriteResult
from otlp2parquet.writer.files import MICROS_PER_DAY, encode, merge_sorted, split

log = logging.getLogger(__name__)

FLUSH_ID = "otlp2parquet.flush-id"
WRITER_ID = "otlp2parquet.writer-id"
WAL_LSN = "otlp2parquet.wal-lsn"
LOOKBACK_SNAPSHOTS = 50
_MISSING_STATISTICS = "PyArrow statistics missing for column %d when writing file"


class _OmittedStatistics(logging.Filter):
    """pyiceberg warns once per column without Parquet statistics. Our files omit them inside lists and maps
    on purpose (see `statistics_columns`). pyiceberg never records bounds for such nested columns; without
    statistics it also leaves out their null counts, and keeps their value counts and sizes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != _MISSING_STATISTICS


logging.getLogger("pyiceberg.io.pyarrow").addFilter(_OmittedStatistics())


def _transient_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [CommitFailedException, CommitStateUnknownException, OSError,
                                         TransientWriteError]
    try:
        from sqlalchemy.exc import OperationalError  # "database is locked" from a busy SQLite catalog

        errors.append(OperationalError)
    except ImportError:  # pragma: no cover - sqlalchemy comes with pyiceberg's sql extras
        pass
    return tuple(errors)


TRANSIENT = _transient_errors()
_committing = threading.local()  # the IcebergWriter committing on this thread, if any


class _CountInternalRetries(logging.Filter):
    """pyiceberg retries a concurrent-update conflict inside `commit_transaction` and only logs it; count it too."""

    def filter(self, record: logging.LogRecord) -> bool:
        writer = getattr(_committing, "writer", None)
        if writer is not None and str(record.msg).startswith("Commit failed due to a concurrent update"):
            writer._count_retry("conflict")
        return True


logging.getLogger("pyiceberg.table").addFilter(_CountInternalRetries())


def _file_path(table: Table, time_column: str, day: int, service: str | None, name: str) -> str:
    date = dt.date(1970, 1, 1) + dt.timedelta(days=day)
    partition = f"{time_column}_day={date.isoformat()}"
    if service is not None:
        partition += "/ServiceName=" + urllib.parse.quote(service, safe="")
    return f"{table.location()}/data/{partition}/{name}.parquet"


def write_data_files(table: Table, table_name: str, data: pa.Table, name_prefix: str, settings: Settings,
                     rows_per_file: int | None = None) -> list[DataFile]:
    """Write `data` (already sorted) as zstd Parquet files with field IDs, one or more per partition."""
    spec = TABLES[table_name]
    schema = arrow_schema_with_ids(table_name)
    files = []
    groups = split(data, spec.time_column, MICROS_PER_DAY, settings.iceberg.partition_by_service)
    for day, service, rows in groups:
        step = rows_per_file or rows.num_rows
        for offset in range(0, rows.num_rows, step):
            path = _file_path(table, spec.time_column, day, service, f"{name_prefix}-{len(files):05d}")
            with table.io.new_output(path).create(overwrite=True) as out:
                out.write(encode(rows.slice(offset, step), spec, settings.writer, schema))
            files.append(parquet_file_to_data_file(table.io, table.metadata, path))
    return files


class IcebergWriter:
    def __init__(self, table: str, catalog: Catalog, settings: Settings, writer_id: str,
                 telemetry: Telemetry | None = None) -> None:
        self.spec = TABLES[table]
        self.telemetry = telemetry or Telemetry()
        self.catalog = catalog
        self.settings = settings
        self.writer_id = writer_id
        self.identifier = (settings.iceberg.namespace, settings.writer.table_prefix + table)
        self.name = ".".join(self.identifier)
        self._table: Table | None = None  # owned by this writer's thread only
        self._in_doubt = False  # a flush failed: some of the rows given back to us may have been committed
        self.commit_retries = 0

    def table(self) -> Table:
        """The table, created from the contract on first use (another sidecar may create it first)."""
        if self._table is None:
            self._table = self.catalog.create_table_if_not_exists(
                self.identifier,
                schema=iceberg_schema(self.spec.name),
                partition_spec=iceberg_partition_spec(self.spec.name, self.settings.iceberg.partition_by_service),
                sort_order=iceberg_sort_order(self.spec.name),
                properties=table_properties(),
            )
        return self._table

    def committed_lsn(self) -> int:
        """The highest WAL watermark in this writer's snapshots, read fresh from the catalog."""
        try:
            table = self.catalog.load_table(self.identifier)
        except NoSuchTableError:
            return 0
        self._table = table
        marks = [int(s.summary[WAL_LSN]) for s in table.snapshots()
                 if s.summary is not None and s.summary.get(WRITER_ID) == self.writer_id and s.summary.get(WAL_LSN)]
        return max(marks, default=0)

    def _landed(self, table: Table, flush_id: str) -> int | None:
        snapshots = sorted(table.snapshots(), key=lambda s: s.sequence_number or 0)[-LOOKBACK_SNAPSHOTS:]
        for snapshot in reversed(snapshots):
            if snapshot.summary is not None and snapshot.summary.get(FLUSH_ID) == flush_id:
                return snapshot.snapshot_id
        return None

    def _count_retry(self, kind: str) -> None:
        self.commit_retries += 1
        self.telemetry.commit_retries.labels(self.spec.name, kind).inc()

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self._count_retry("conflict" if isinstance(exc, CommitFailedException) else
                          "state_unknown" if isinstance(exc, CommitStateUnknownException) else
                          "io" if isinstance(exc, OSError) else "other")
        log.warning("commit to %s failed, retrying", self.name,
                    extra={"table": self.name, "attempt": state.attempt_number, "error": repr(exc)})

    def _commit(self, files: list[DataFile], flush_id: str, watermark: int) -> int:
        properties = {FLUSH_ID: flush_id, WRITER_ID: self.writer_id, WAL_LSN: str(watermark)}
        retrying = Retrying(
            retry=retry_if_exception_type(TRANSIENT),
            stop=stop_after_attempt(self.settings.iceberg.commit_max_attempts)
            | stop_after_delay(self.settings.iceberg.commit_max_elapsed_s),
            wait=wait_random_exponential(multiplier=0.2, max=10),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                table = self.table()
                if attempt.retry_state.attempt_number > 1:
                    table.refresh()
                    landed = self._landed(table, flush_id)
                    if landed is not None:
                        log.info("flush already committed by an earlier attempt", extra={"table": self.name})
                        return landed
                transaction = table.transaction()
                with transaction.update_snapshot(snapshot_properties=properties).fast_append() as append:
                    for data_file in files:
                        append.append_data_file(data_file)
                outer, _committing.writer = getattr(_committing, "writer", None), self
                try:
                    transaction.commit_transaction()
                finally:
                    _committing.writer = outer
                snapshot = table.current_snapshot()
                assert snapshot is not None
                return snapshot.snapshot_id
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _not_yet_committed(self, drained: Drained) -> list[pa.RecordBatch]:
        """After a failure, drop the returned rows that the failed flush did commit after all."""
        if not self._in_doubt:
            return drained.batches
        committed = self.committed_lsn()
        return [b for b, lsn in zip(drained.batches, drained.lsns, strict=True) if lsn > committed]

    def stage(self, drained: Drained, flush_id: str) -> Staged:
        batches = self._not_yet_committed(drained)
        if not batches:
            log.info("the failed flush had committed after all", extra={"table": self.name})
            return Staged(self.name, [], 0, 0, drained.watermark)
        data = merge_sorted(self.spec, batches)
        try:
            files = write_data_files(self.table(), self.spec.name, data, flush_id, self.settings)
        except Exception as exc:  # the rows go back to the buffer; nothing was committed
            self._table = None
            error = TransientWriteError if isinstance(exc, TRANSIENT) else PermanentWriteError
            raise error(f"writing {self.name} data files failed: {exc}") from exc
        return Staged(self.name, [f.file_path for f in files], sum(f.file_size_in_bytes for f in files),
                      data.num_rows, drained.watermark, files)

    def commit(self, staged: Sequence[Staged], commit_id: str) -> WriteResult:
        files = [f for s in staged for f in s.files]
        result = WriteResult.of(self.name, staged, committed_to_catalog=True)
        if not files:
            self._in_doubt = False
            return result
        try:
            snapshot_id = self._commit(files, commit_id, max(s.watermark for s in staged))
        except Exception as exc:  # the data files stay; the commit is retried with the same id
            self.telemetry.commits.labels(self.spec.name, "failed").inc()
            self._in_doubt = True
            self._table = None  # reload next time rather than trust a handle in an unknown state
            level = logging.WARNING if self.settings.iceberg.warn_on_catalog_failure else logging.ERROR
            log.log(level, "commit to %s failed; the rows stay in the WAL; data files waiting: %s",
                    self.name, " ".join(result.paths), extra={
                        "table": self.name, "commit_id": commit_id, "rows": result.rows, "paths": result.paths,
                        "error": repr(exc)})
            error = TransientWriteError if isinstance(exc, TRANSIENT) else PermanentWriteError
            raise error(f"commit to {self.name} failed: {exc}") from exc
        self._in_doubt = False
        self.telemetry.commits.labels(self.spec.name, "ok").inc()
        return dataclasses.replace(result, snapshot_id=snapshot_id)

    def write(self, drained: Drained, flush_id: str) -> WriteResult:
        return self.commit([self.stage(drained, flush_id)], flush_id)

    def close(self) -> None:
        self._table = None

