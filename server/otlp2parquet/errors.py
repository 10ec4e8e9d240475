"""Every exception of otlp2parquet, in one place.

    Otlp2ParquetError
    ├── ConfigError            invalid settings; raised at start-up only
    ├── CatalogError           the catalog cannot be reached or refuses us at start-up
    ├── ConversionError        a request that cannot be decoded; permanent -> INVALID_ARGUMENT
    ├── ConverterLostError     a conversion worker process died mid-request; retryable -> UNAVAILABLE + RetryInfo
    ├── BufferFullError        back-pressure; retryable -> UNAVAILABLE + RetryInfo
    ├── RequestTooLargeError   a request whose rows exceed the whole buffer; permanent -> RESOURCE_EXHAUSTED
    ├── WalError               the write-ahead log cannot be written; retryable -> UNAVAILABLE + RetryInfo
    └── WriteError
        ├── TransientWriteError    a retry may succeed (commit conflict, state unknown, OSError)
        └── PermanentWriteError    retrying cannot help (schema mismatch, validation, auth)

Retryability is a property of the type, decided where a library error is translated.
"""

from __future__ import annotations

__all__ = [
    "BufferFullError",
    "CatalogError",
    "ConfigError",
    "ConversionError",
    "ConverterLostError",
    "Otlp2ParquetError",
    "PermanentWriteError",
    "RequestTooLargeError",
    "TransientWriteError",
    "WalError",
    "WriteError",
]


class Otlp2ParquetError(Exception):
    """Root of all otlp2parquet errors."""


class ConfigError(Otlp2ParquetError):
    """The settings are invalid; start-up stops with this message."""


class CatalogError(Otlp2ParquetError):
    """The catalog cannot be opened at start-up (unreachable, unauthorized); the message names which one."""


class ConversionError(Otlp2ParquetError):
    """The request bytes are not a valid OTLP message."""


class ConverterLostError(Otlp2ParquetError):
    """A conversion worker process exited mid-request. Nothing of it was buffered or written to the WAL, so the
    client retries it."""


class BufferFullError(Otlp2ParquetError):
    """The in-memory buffer is above its high-water mark; the client should retry later."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestTooLargeError(Otlp2ParquetError):
    """A request whose rows need more than the buffer's whole memory budget. Refusing it as full would have the
    Collector retry it until its retries run out, since no flush can ever make that much room; so it is
    permanent, answered as gRPC answers a message over its size limit (RESOURCE_EXHAUSTED, no RetryInfo)."""

    @classmethod
    def over_budget(cls, size: int, budget: int, counting: bool = False) -> RequestTooLargeError:
        """The one message, whether the buffer found it out or the conversion did (`counting`: it stopped once
        its count passed the budget, so `size` is how far it got)."""
        return cls(f"the request's rows take {'at least ' if counting else ''}{size} bytes in memory, more than "
                   f"the buffer's whole budget ({budget} bytes, buffer.memory_budget_bytes): send smaller requests "
                   "(the Collector's batch max_size) or raise the budget")


class WalError(Otlp2ParquetError):
    """The write-ahead log cannot be written or read (disk full, I/O error, foreign file)."""


class WriteError(Otlp2ParquetError):
    """A flush could not be written or committed."""


class TransientWriteError(WriteError):
    """A retry may succeed: commit conflict, unknown commit state, I/O error."""


class PermanentWriteError(WriteError):
    """Retrying cannot help: schema mismatch, validation failure, missing permissions."""
