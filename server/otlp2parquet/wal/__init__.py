"""The write-ahead log that makes acknowledged exports survive a crash."""

from otlp2parquet.wal.codec import Record
from otlp2parquet.wal.log import WriteAheadLog

__all__ = ["Record", "WriteAheadLog"]
