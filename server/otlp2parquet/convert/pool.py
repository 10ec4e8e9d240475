"""Conversion in worker processes, so that a second core helps.

ptars holds the GIL while it decodes a request, and decoding is half of the server process's GIL-held time under
load (docs/design.md), so threads cannot spread it over cores. Processes can: a worker gets the request bytes,
converts them, and sends each table's batch back as Arrow IPC, which the server maps without copying.

A worker only computes. The WAL, the LSNs, the buffer and the commits stay in the server process, so the
exactly-once rules do not change. A worker that dies takes only its request with it: the pool is rebuilt and
the client is asked to retry.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier as BarrierType

import pyarrow as pa

from otlp2parquet.convert import CONVERTERS, ConversionResult, enable_native
from otlp2parquet.errors import ConverterLostError
from otlp2parquet.memory import Trimmer

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass
class _Converted:
    """A ConversionResult as it crosses the process boundary: batches as Arrow IPC streams."""

    tables: dict[str, bytes]
    accepted: int
    rejected: int
    reasons: dict[str, int]
    warnings: list[str] = field(default_factory=list)

    def result(self) -> ConversionResult:
        batches = {}
        for table, data in self.tables.items():
            with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
                batches[table] = reader.read_next_batch()
        result = ConversionResult(batches, self.accepted, self.rejected)
        result.reasons.update(self.reasons)
        result.warnings.extend(self.warnings)
        return result


def _ipc(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


_trimmer: Trimmer | None = None
_all_started: BarrierType | None = None


def _start_worker(all_started: BarrierType, native_decode: bool) -> None:
    """Ctrl-C reaches the whole process group, but stopping is the server's to decide: it shuts the pool down
    when it has drained. SIGTERM stays fatal, since the executor terminates the rest of a broken pool with it,
    and it is what the worker gets when the server dies, however it dies (Linux's parent-death signal)."""
    global _trimmer, _all_started
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    _trimmer = Trimmer()
    _all_started = all_started
    enable_native(native_decode)


def _convert(signal_name: str, request: bytes, limit: int | None) -> _Converted:
    result = CONVERTERS[signal_name](request, limit)
    converted = _Converted({t: _ipc(b) for t, b in result.batches.items()}, result.accepted, result.rejected,
                           dict(result.reasons), result.warnings)
    del result
    if _trimmer is not None:
        _trimmer.maybe_trim()
    return converted


def _check_in() -> int:
    """Wait for every worker to be started: a worker waiting here takes no other check-in, so each has run one."""
    if _all_started is not None:
        _all_started.wait(timeout=120)
    return os.getpid()


class ConversionPool:
    """`processes` workers converting requests; `convert` has the signature of the in-process converters."""

    def __init__(self, processes: int, native_decode: bool = True, limit: int | None = None) -> None:
        self.processes = processes
        self.native_decode = native_decode
        self.limit = limit  # on a request's rows' bytes, as the in-process converters take it
        self._lock = threading.Lock()
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        # spawn, not fork: the server process runs gRPC threads, which fork would copy mid-flight.
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(self.processes, mp_context=context, initializer=_start_worker,
                                   initargs=(context.Barrier(self.processes), self.native_decode))

    def start(self) -> list[int]:
        """Start every worker now, so that the first requests do not wait for imports; returns their pids once
        all of them are ready (ignoring stop signals, among other things)."""
        for future in [self._executor.submit(_check_in) for _ in range(self.processes)]:
            future.result()
        return self.pids()

    def pids(self) -> list[int]:
        return sorted(self._executor._processes or ())  # the executor keeps no public list of its workers

    def convert(self, signal_name: str, request: bytes) -> ConversionResult:
        executor = self._executor
        try:
            converted = executor.submit(_convert, signal_name, request, self.limit).result()
        except BrokenProcessPool as exc:
            self._replace(executor)
            raise ConverterLostError(f"a conversion worker exited while converting a {signal_name} request "
                                     f"of {len(request)} bytes") from exc
        return converted.result()

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:  # several requests see one breakage; rebuild once
                log.error("a conversion worker exited; starting a new pool",
                          extra={"processes": self.processes})
                self._executor = self._new_executor()
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
