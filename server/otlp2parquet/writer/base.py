"""The writer interface (the seed's `OtlpWriter`): write one table's flush, get a `WriteResult` back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from otlp2parquet.buffer import Drained


@dataclass(frozen=True)
class WriteResult:
    table: str
    paths: list[str]
    file_size: int  # bytes on disk, all files together
    rows: int
    committed_to_catalog: bool
    snapshot_id: int | None = None


class TableWriter(Protocol):
    """Writes the flushes of one table. Each instance is used by one thread only (one committer per table)."""

    def write(self, drained: Drained, flush_id: str) -> WriteResult:
        """Write and commit `drained`, recording its watermark; raise if it is not committed."""
        ...

    def committed_lsn(self) -> int:
        """The highest flush watermark this sidecar has committed to the table (0 for none)."""
        ...

    def close(self) -> None: ...


class WriterFactory(Protocol):
    def __call__(self, table: str) -> TableWriter: ...
