"""Table maintenance: what pyiceberg 0.12 does not do by itself, safe while sidecars keep appending.

- Snapshot expiry, older than a duration, always keeping the newest N and the newest snapshot of every writer id
  (crash recovery reads each sidecar's committed WAL watermark from it; expiring it would make a restart
  replay committed records).
- Metadata cleanup: the table properties that let each commit delete old metadata.json files.
- Retention: delete rows older than an age (whole files are dropped; the boundary day is rewritten).
- Orphan files: data and metadata files no remaining snapshot references, older than a safety horizon (younger
  ones may belong to a flush that is committing right now).
- Compaction: in cold partitions (old event days that received no file recently), small files are merged into
  files near a target size, sorted, and swapped in one snapshot that deletes exactly those files: a file a
  sidecar appends meanwhile is never touched.

Every step is retried on commit conflicts (a sidecar committing in between), has a dry run, and reports what it
did or would do. Append latency grows with retained snapshots, so expiry is what keeps it flat.
"""

from __future__ import annotations

import datetime as dt
import logging
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import LessThan
from pyiceberg.manifest import DataFile, ManifestEntryStatus
from pyiceberg.table import Table
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from otlp2parquet.config import Settings
from otlp2parquet.schemas import TABLES, arrow_schema, table_properties
from otlp2parquet.writer.catalogs import filesystem
from otlp2parquet.writer.iceberg import WRITER_ID

log = logging.getLogger(__name__)


@dataclass
class StepReport:
    table: str
    step: str
    dry_run: bool
    snapshots: int = 0
    files: int = 0
    bytes: int = 0
    rows: int = 0
    details: list[str] = field(default_factory=list)

    def line(self) -> str:
        verb = "would " if self.dry_run else ""
        if self.step == "metadata-cleanup":
            return f"{self.table:32} {self.step:18} {verb}set: {', '.join(self.details) or 'nothing (already set)'}"
        return (f"{self.table:32} {self.step:18} {verb}remove: {self.snapshots} snapshots, {self.files} files "
                f"({self.bytes:,} bytes), {self.rows:,} rows")


def _retrying() -> Retrying:
    return Retrying(retry=retry_if_exception_type(CommitFailedException), stop=stop_after_attempt(8),
                    wait=wait_random_exponential(multiplier=0.2, max=5), reraise=True)


def parse_duration(text: str) -> dt.timedelta:
    """'90s', '15m', '12h', '7d' -> timedelta."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    if not text or text[-1] not in units or not text[:-1].replace(".", "", 1).isdigit():
        raise ValueError(f"expected a duration like 90s, 15m, 12h or 7d, got {text!r}")
    return dt.timedelta(**{units[text[-1]]: float(text[:-1])})


def snapshots_to_expire(table: Table, older_than: dt.timedelta, keep_last: int,
                        now: dt.datetime | None = None) -> list[int]:
    now = now or dt.datetime.now(dt.UTC)
    cutoff_ms = int((now - older_than).timestamp() * 1000)
    snapshots = sorted(table.snapshots(), key=lambda s: s.timestamp_ms)
    keep = {s.snapshot_id for s in snapshots[-keep_last:]} if keep_last else set()
    current = table.current_snapshot()
    if current is not None:
        keep.add(current.snapshot_id)
    newest_by_writer: dict[str, int] = {}
    for s in snapshots:  # ascending: the last one seen per writer is its newest
        writer = s.summary.get(WRITER_ID) if s.summary is not None else None
        if writer:
            newest_by_writer[writer] = s.snapshot_id
    keep |= set(newest_by_writer.values())
    return [s.snapshot_id for s in snapshots if s.timestamp_ms < cutoff_ms and s.snapshot_id not in keep]


def expire_snapshots(table: Table, older_than: dt.timedelta, keep_last: int, dry_run: bool) -> StepReport:
    report = StepReport(table.name()[-1], "expire-snapshots", dry_run)
    for attempt in _retrying():
        with attempt:
            table.refresh()
            doomed = snapshots_to_expire(table, older_than, keep_last)
            report.snapshots = len(doomed)
            if doomed and not dry_run:
                table.maintenance.expire_snapshots().by_ids(doomed).commit()
    return report


def ensure_metadata_cleanup(table: Table, dry_run: bool) -> StepReport:
    """Tables created by older versions may lack the properties that delete old metadata files on commit."""
    report = StepReport(table.name()[-1], "metadata-cleanup", dry_run)
    wanted = {k: v for k, v in table_properties().items() if k.startswith("write.metadata")}
    missing = {k: v for k, v in wanted.items() if table.properties.get(k) != v}
    report.details = [f"{k}={v}" for k, v in missing.items()]
    if missing and not dry_run:
        for attempt in _retrying():
            with attempt:
                table.refresh()
                table.transaction().set_properties(missing).commit_transaction()
    return report


def apply_retention(table: Table, column: str, max_age: dt.timedelta, dry_run: bool) -> StepReport:
    """Delete rows whose event time (`column`) is older than `max_age`."""
    report = StepReport(table.name()[-1], "retention", dry_run)
    cutoff = (dt.datetime.now(dt.UTC) - max_age).isoformat()
    condition = LessThan(column, cutoff)
    for attempt in _retrying():
        with attempt:
            table.refresh()
            scan = table.scan(row_filter=condition, selected_fields=(column,))
            tasks = list(scan.plan_files())
            report.rows = scan.to_arrow().num_rows if tasks else 0
            report.files = len(tasks)
            report.bytes = sum(t.file.file_size_in_bytes for t in tasks)
            if report.rows and not dry_run:
                table.delete(delete_filter=condition, snapshot_properties={"otlp2parquet.maintenance": "retention"})
    return report


def _fs_path(uri: str) -> str:
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("", "file"):
        return urllib.parse.unquote(parsed.path)
    return f"{parsed.netloc}{urllib.parse.unquote(parsed.path)}"


def referenced_files(table: Table) -> set[str]:
    """Every file some remaining snapshot or metadata version needs (as filesystem paths)."""
    io = table.io
    metadata = table.metadata
    paths = {table.metadata_location} | {entry.metadata_file for entry in metadata.metadata_log}
    paths |= {s.statistics_path for s in metadata.statistics}
    for snapshot in table.snapshots():
        paths.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(io):
            paths.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(io, discard_deleted=False):
                if entry.status != ManifestEntryStatus.DELETED:
                    paths.add(entry.data_file.file_path)
    return {_fs_path(p) for p in paths}


def remove_orphan_files(table: Table, older_than: dt.timedelta, dry_run: bool,
                        progress: Callable[[int], None] | None = None) -> StepReport:
    report = StepReport(table.name()[-1], "orphan-files", dry_run)
    table.refresh()
    keep = referenced_files(table)
    fs, root = filesystem(table.io, table.location())
    horizon = dt.datetime.now(dt.UTC) - older_than
    listed = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    for n, info in enumerate(listed):
        if progress is not None and n and n % 1000 == 0:
            progress(n)
        if info.type != pafs.FileType.File or info.path in keep:
            continue
        if info.mtime is not None and info.mtime.astimezone(dt.UTC) > horizon:
            continue  # may belong to a commit in progress
        report.files += 1
        report.bytes += info.size or 0
        report.details.append(info.path)
        if not dry_run:
            fs.delete_file(info.path)
    return report


def _partition_files(table: Table) -> dict[tuple, list[tuple[DataFile, int]]]:
    """Live data files of the current snapshot by partition, with the time (ms) each was added."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        return {}
    added_at = {s.snapshot_id: s.timestamp_ms for s in table.snapshots()}
    partitions: dict[tuple, list[tuple[DataFile, int]]] = {}
    for manifest in snapshot.manifests(table.io):
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            key = tuple(entry.data_file.partition)
            when = added_at.get(entry.snapshot_id or 0, 0)
            partitions.setdefault(key, []).append((entry.data_file, when))
    return partitions


def compact(table: Table, table_name: str, settings: Settings, cold_after: dt.timedelta, target_bytes: int,
            dry_run: bool, now: dt.datetime | None = None) -> StepReport:
    """Merge the small files of cold partitions (day < now - cold_after, no file added within cold_after)."""
    from otlp2parquet.writer.files import merge_sorted
    from otlp2parquet.writer.iceberg import write_data_files

    report = StepReport(table.name()[-1], "compaction", dry_run)
    now = now or dt.datetime.now(dt.UTC)
    cold_day = (now - cold_after).date()
    cold_ms = int((now - cold_after).timestamp() * 1000)
    spec = TABLES[table_name]
    arrow = arrow_schema(table_name)
    table.refresh()
    for partition, files in _partition_files(table).items():
        day = dt.date(1970, 1, 1) + dt.timedelta(days=partition[0])
        small = [f for f, _ in files if f.file_size_in_bytes < target_bytes // 2]
        if day >= cold_day or len(small) < 2 or any(added >= cold_ms for _, added in files):
            continue
        report.files += len(small)
        report.bytes += sum(f.file_size_in_bytes for f in small)
        report.rows += sum(f.record_count for f in small)
        report.details.append(f"{day}: {len(small)} files")
        if dry_run:
            continue
        tables = []
        for f in small:
            with table.io.new_input(f.file_path).open() as stream:
                tables.append(pq.read_table(stream).cast(arrow))
        merged = merge_sorted(spec, pa.concat_tables(tables).to_batches())
        bytes_per_row = max(1.0, sum(f.file_size_in_bytes for f in small) / max(1, merged.num_rows))
        rows_per_file = max(1, int(target_bytes / bytes_per_row))
        new_files = write_data_files(table, table_name, merged, f"compacted-{uuid.uuid4().hex}", settings,
                                     rows_per_file)
        for attempt in _retrying():
            with attempt:
                table.refresh()
                live = {f.file_path for fs in _partition_files(table).values() for f, _ in fs}
                if not all(f.file_path in live for f in small):
                    log.warning("files changed under compaction; leaving the partition", extra={"day": str(day)})
                    break
                transaction = table.transaction()
                with transaction.update_snapshot(
                        snapshot_properties={"otlp2parquet.maintenance": "compaction"}).overwrite() as rewrite:
                    for f in small:
                        rewrite.delete_data_file(f)
                    for f in new_files:
                        rewrite.append_data_file(f)
                transaction.commit_transaction()
    return report


@dataclass(frozen=True)
class Plan:
    """What one `maintain` run does."""

    expire_older_than: dt.timedelta | None = dt.timedelta(days=1)
    keep_last: int = 10
    orphans_older_than: dt.timedelta | None = dt.timedelta(days=3)
    retention: dict[str, dt.timedelta] = field(default_factory=dict)  # table (without prefix) -> max age
    dry_run: bool = False
    compact_after: dt.timedelta | None = dt.timedelta(days=2)
    target_file_bytes: int = 128 * 1024 * 1024


def maintain(load_table: Callable[[str], Table | None], plan: Plan, tables: list[str],
             settings: Settings | None = None) -> list[StepReport]:
    """Run the plan over `tables` (names without prefix); a table that does not exist yet is skipped.

    Compaction writes files, so it needs `settings` (compression, partitioning); without them it is skipped.
    """
    reports: list[StepReport] = []
    for name in tables:
        table = load_table(name)
        if table is None:
            continue
        steps: list[Callable[[], StepReport]] = [lambda t=table: ensure_metadata_cleanup(t, plan.dry_run)]
        if name in plan.retention:
            steps.append(lambda t=table, n=name: apply_retention(t, TABLES[n].time_column, plan.retention[n],
                                                                 plan.dry_run))
        if plan.compact_after is not None and settings is not None:
            steps.append(lambda t=table, n=name: compact(t, n, settings, plan.compact_after, plan.target_file_bytes,
                                                         plan.dry_run))
        if plan.expire_older_than is not None:
            steps.append(lambda t=table: expire_snapshots(t, plan.expire_older_than, plan.keep_last, plan.dry_run))
        if plan.orphans_older_than is not None:
            steps.append(lambda t=table, n=name: remove_orphan_files(
                t, plan.orphans_older_than, plan.dry_run,
                lambda k: log.info("listing files", extra={"table": n, "files_seen": k})))
        for step in steps:
            report = step()
            reports.append(report)
            log.info(report.line(), extra={"table": report.table, "step": report.step, "dry_run": report.dry_run,
                                           "snapshots": report.snapshots, "files": report.files,
                                           "bytes": report.bytes, "rows": report.rows})
    return reports
