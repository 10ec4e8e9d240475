"""The writer interface (the seed's `OtlpWriter`): write one table's flush, get a `WriteResult` back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa


@dataclass(frozen=True)
class WriteResult:
    table: str
    paths: list[str]
    file_size: int  # bytes on disk, all files together
    rows: int
    committed_to_catalog: bool
    snapshot_id: int | None = None
    extra: dict[str, str] = field(default_factory=dict)


class TableWriter(Protocol):
    """Writes the flushes of one table. Each instance is used by one thread only (one committer per table)."""

    def write(self, batches: list[pa.RecordBatch], flush_id: str) -> WriteResult: ...

    def close(self) -> None: ...


class WriterFactory(Protocol):
    def __call__(self, table: str) -> TableWriter: ...
