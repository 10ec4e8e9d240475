"""Local files that are on disk before anything points at them.

An acknowledged export lives in the WAL only until its rows are committed; then the WAL forgets it. On a local
warehouse a new file can sit in the page cache for half a minute, so a power cut just after a commit could leave
the catalog pointing at metadata or data that never reached the disk: an unreadable table, acknowledged rows lost.
Files written here are fsynced, and their directory with them, before `close` returns: before pyiceberg moves the
catalog's pointer, and before the WAL is trimmed. Object stores hold an object once its upload completes, so
nothing changes for them.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any

from pyiceberg.io.pyarrow import BUFFER_SIZE, ONE_MEGABYTE, PyArrowFile, PyArrowFileIO

from otlp2parquet.disk import fsync_path

IO_IMPL = f"{__name__}.DurableFileIO"


def fsync_new_file(path: str) -> None:
    """The file's bytes and its directory entry. Directories created on the way are ext4/xfs journal entries that
    the same journal commit makes durable."""
    fsync_path(path)
    fsync_path(os.path.dirname(path) or ".")


class _SyncOnClose:
    """An output stream whose `close` returns once the file is on disk."""

    def __init__(self, stream: Any, path: str) -> None:
        self._stream = stream
        self._path = path
        self._synced = False

    def write(self, data: bytes) -> int:
        return self._stream.write(data)

    def close(self) -> None:
        self._stream.close()
        if not self._synced:
            self._synced = True
            fsync_new_file(self._path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __enter__(self) -> _SyncOnClose:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:  # a failed write: close without paying for the sync of a file nobody will reference
            self._stream.close()


class _DurableFile(PyArrowFile):
    def __init__(self, location: str, path: str, fs: Any, buffer_size: int) -> None:
        super().__init__(location=location, path=path, fs=fs, buffer_size=buffer_size)
        self._local_path = path

    def create(self, overwrite: bool = False) -> Any:
        return _SyncOnClose(super().create(overwrite), self._local_path)


class DurableFileIO(PyArrowFileIO):
    """pyiceberg's pyarrow FileIO, with local files fsynced on close (data files, manifests, table metadata)."""

    def new_output(self, location: str) -> PyArrowFile:
        scheme, netloc, path = self.parse_location(location, self.properties)
        if scheme != "file":
            return super().new_output(location)
        return _DurableFile(location, path, self.fs_by_scheme(scheme, netloc),
                            int(self.properties.get(BUFFER_SIZE, ONE_MEGABYTE)))
