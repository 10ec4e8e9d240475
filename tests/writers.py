"""An in-memory table writer for flusher and service tests: records what it is given, fails on demand."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from otlp2parquet.buffer import Drained
from otlp2parquet.writer import Staged, WriteResult


class RecordingWriter:
    """Records stagings in `log` and commits in `commits`; staging fails while `fail` is set, committing while
    `fail_commit` is."""

    def __init__(self, table: str, log: list[tuple[str, int, float]], fail: threading.Event,
                 commits: list[tuple[str, str, int]], fail_commit: threading.Event) -> None:
        self.table, self.log, self.fail, self.commits, self.fail_commit = table, log, fail, commits, fail_commit
        self.failed_commit_ids: list[str] = []

    def stage(self, drained: Drained, flush_id: str) -> Staged:
        if self.fail.is_set():
            raise OSError("disk full (injected)")
        self.log.append((self.table, drained.rows, time.monotonic()))
        return Staged(self.table, [flush_id], 0, drained.rows, drained.watermark)

    def commit(self, staged: Sequence[Staged], commit_id: str) -> WriteResult:
        if self.fail_commit.is_set():
            self.failed_commit_ids.append(commit_id)
            raise OSError("catalog down (injected)")
        self.commits.append((self.table, commit_id, len(staged)))
        return WriteResult.of(self.table, staged, committed_to_catalog=True)

    def write(self, drained: Drained, flush_id: str) -> WriteResult:
        return self.commit([self.stage(drained, flush_id)], flush_id)

    def committed_lsn(self) -> int:
        return 0

    def close(self) -> None:
        pass
