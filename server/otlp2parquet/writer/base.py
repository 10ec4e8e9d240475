"""The writer interface (the seed's `OtlpWriter`): stage flushes as data files, commit them together.

Staging frees a flush's memory as soon as its files are written; the commit that makes them visible can wait
(Iceberg: at most one commit per table per interval). `write` is one flush staged and committed at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from otlp2parquet.buffer import Drained


@dataclass(frozen=True)
class WriteResult:
    table: str
    paths: list[str]
    file_size: int  # bytes on disk, all files together
    rows: int
    committed_to_catalog: bool
    snapshot_id: int | None = None

    @classmethod
    def of(cls, table: str, staged: Sequence[Staged], committed_to_catalog: bool) -> WriteResult:
        """What committing `staged` together adds up to."""
        return cls(table, [p for s in staged for p in s.paths], sum(s.file_size for s in staged),
                   sum(s.rows for s in staged), committed_to_catalog)


@dataclass(frozen=True)
class Staged:
    """One flush's data files, written but not yet committed."""

    table: str
    paths: list[str]
    file_size: int
    rows: int
    watermark: int  # the flush's WAL watermark
    files: list[Any] = field(default_factory=list)  # the writer's own handles (Iceberg DataFiles)


class TableWriter(Protocol):
    """Writes the flushes of one table. Each instance is used by one thread only (one committer per table)."""

    def write(self, drained: Drained, flush_id: str) -> WriteResult:
        """Write and commit `drained`, recording its watermark; raise if it is not committed."""
        ...

    def stage(self, drained: Drained, flush_id: str) -> Staged:
        """Write `drained` as data files without making them visible; raise if that fails (nothing is staged)."""
        ...

    def commit(self, staged: Sequence[Staged], commit_id: str) -> WriteResult:
        """Make the staged files visible in one commit recording the highest watermark. Retrying with the same
        `commit_id` after a failure never commits twice."""
        ...

    def committed_lsn(self) -> int:
        """The highest flush watermark this sidecar has committed to the table (0 for none)."""
        ...

    def close(self) -> None: ...


class WriterFactory(Protocol):
    def __call__(self, table: str) -> TableWriter: ...
