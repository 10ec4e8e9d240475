"""fsync by name: how the WAL and the writers make a file's bytes or a directory's entries durable."""

from __future__ import annotations

import os


def fsync_path(path: str | os.PathLike[str]) -> None:
    """fsync a file or a directory by name (Linux flushes an inode's data whichever descriptor asks)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
