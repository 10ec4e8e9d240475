"""The OTLP gRPC receiver: three `Export` RPCs taking raw request bytes, so each request is decoded once.

Every outcome maps to the status the Collector handles correctly (its retry table):
- success: a response with `partial_success` unset;
- records rejected by the converter: `partial_success` with the count and the reasons (never retried);
- bytes that are not an OTLP request: INVALID_ARGUMENT (the Collector drops them, as it must);
- a request whose rows exceed the buffer's whole budget: RESOURCE_EXHAUSTED without RetryInfo, as gRPC answers
  a message over its size limit (permanent: no flush could ever make room, so retrying only delays the drop);
- a full buffer, a WAL that cannot be written (disk full), shutdown, or anything unexpected: UNAVAILABLE with a
  RetryInfo delay, so the Collector keeps the data and retries. No exception ever leaves a handler: grpcio would
  answer UNKNOWN, which the Collector treats as permanent and drops.

With the WAL on, a request is acknowledged only after its bytes are in the log (and on disk, with fsync
"always"), so an acknowledged export survives a crash.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from otlp2parquet.buffer import Buffer
from otlp2parquet.convert import CONVERTERS, ConversionResult, join
from otlp2parquet.errors import (
    BufferFullError,
    ConversionError,
    ConverterLostError,
    RequestTooLargeError,
    WalError,
)
from otlp2parquet.telemetry import Telemetry
from otlp2parquet.wal import WriteAheadLog

log = logging.getLogger(__name__)
MAX_MESSAGE_CHARS = 4096
Converter = Callable[[str, bytes], ConversionResult]  # (signal, request bytes) -> result; in or out of process


@dataclass(frozen=True)
class SignalService:
    signal: str
    service: str  # full gRPC service name
    response: type[Message]
    partial: Callable[[int, str], Message]


SERVICES = [
    SignalService("traces", "opentelemetry.proto.collector.trace.v1.TraceService",
                  trace_service_pb2.ExportTraceServiceResponse,
                  lambda n, msg: trace_service_pb2.ExportTracePartialSuccess(rejected_spans=n, error_message=msg)),
    SignalService("logs", "opentelemetry.proto.collector.logs.v1.LogsService",
                  logs_service_pb2.ExportLogsServiceResponse,
                  lambda n, msg: logs_service_pb2.ExportLogsPartialSuccess(rejected_log_records=n,
                                                                           error_message=msg)),
    SignalService("metrics", "opentelemetry.proto.collector.metrics.v1.MetricsService",
                  metrics_service_pb2.ExportMetricsServiceResponse,
                  lambda n, msg: metrics_service_pb2.ExportMetricsPartialSuccess(rejected_data_points=n,
                                                                                 error_message=msg)),
]


def unavailable(message: str, retry_after_s: float) -> grpc.Status:
    """UNAVAILABLE with google.rpc.RetryInfo: the Collector waits at least that long, then retries."""
    info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(
        seconds=int(retry_after_s), nanos=int((retry_after_s % 1) * 1e9)))
    detail = any_pb2.Any()
    detail.Pack(info)
    return rpc_status.to_status(status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=[detail]))


def invalid_argument(message: str) -> grpc.Status:
    return rpc_status.to_status(status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message))


def resource_exhausted(message: str) -> grpc.Status:
    """RESOURCE_EXHAUSTED without RetryInfo: permanent for the Collector, which drops the data and says why."""
    return rpc_status.to_status(status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message))


Outcome = Message | grpc.Status


@dataclass(eq=False)
class _Queued:
    """An admitted request waiting for a conversion slot; the handler that gets one next may take it along."""

    svc: SignalService
    request: bytes
    taken: bool = False
    outcome: Outcome | None = None
    done: threading.Event = field(default_factory=threading.Event)


class Receiver:
    """Converts requests and offers their batches to the buffer; knows nothing of writers.

    Requests that arrive while every conversion slot is busy queue up, and the next handler to get a slot
    converts all queued requests of its signal as one (up to `group_bytes`), appends them to the WAL as one
    record and syncs once. Each one is answered as if converted alone: a group whose conversion refuses,
    rejects or repairs anything is converted again one request at a time (a full buffer or a failed WAL write
    still refuses the whole group, as it would each request). An idle receiver converts each request alone.

    A request is admitted when it arrives, and again when its group gets the slot: at saturation the buffer
    fills while requests queue, and of the spans a saturated traces sidecar converted, 45 % were then refused
    and their conversion thrown away (ad hoc, one CPU, 8,192-span requests).
    """

    def __init__(self, buffer: Buffer, wal: WriteAheadLog | None = None, telemetry: Telemetry | None = None,
                 conversions: int = 1, convert: Converter | None = None, group_bytes: int = 8 * 1024 * 1024) -> None:
        self.buffer = buffer
        # The conversion stops once a request's rows would pass the whole budget, before they take the memory.
        budget = buffer.settings.memory_budget_bytes
        self._convert = convert or (lambda signal, request: CONVERTERS[signal](request, budget))
        # Conversions at once. In the server process a second one costs CPU and saves no time (the GIL); each
        # one holds a decoded request and its intermediate arrays.
        self._slots = conversions
        self._busy = 0
        self._queue: list[_Queued] = []
        self._queue_changed = threading.Condition()
        self.group_bytes = group_bytes
        self.wal = wal
        self.telemetry = telemetry or Telemetry()
        self.retry_after_s = buffer.settings.retry_after_s
        self.shutting_down = False

    @property
    def queued(self) -> int:
        """Admitted requests waiting for a conversion slot: above zero, the receiver is converting flat out."""
        with self._queue_changed:
            return len(self._queue)

    def _refused(self, svc: SignalService, reason: str, status: grpc.Status,
                 result: ConversionResult | None = None, requests: int = 1) -> grpc.Status:
        t = self.telemetry
        t.requests.labels(svc.signal, "refused", status.code.name).inc(requests)
        if result is None:
            t.refused_requests.labels(svc.signal, reason).inc(requests)
        else:
            t.refused_items.labels(svc.signal, reason).inc(result.accepted + result.rejected)
        return status

    def handle(self, svc: SignalService, request: bytes) -> Outcome:
        """The outcome of one Export: a response message or a status to abort with. Never raises."""
        return self.handle_unread(svc, iter((request,)))

    def handle_unread(self, svc: SignalService, messages: Iterator[bytes]) -> Outcome:
        """`handle`, reading the request from `messages` only once it is admitted: gRPC has then taken in no
        more of a refused request than its flow-control window, and made no copy of it (docs/design.md item
        15). A saturated sidecar refuses most exports."""
        started = time.perf_counter()
        outcome = self._refusal(svc) or self._read(svc, messages)
        if not isinstance(outcome, grpc.Status):
            outcome = self._answer(svc, outcome)
        self.telemetry.export_duration.labels(svc.signal).observe(time.perf_counter() - started)
        return outcome

    def _read(self, svc: SignalService, messages: Iterator[bytes]) -> bytes | grpc.Status:
        try:
            request = next(messages, None)
        except grpc.RpcError:  # the client cancelled, or its deadline passed, before the request was in
            return self._refused(svc, "cancelled", unavailable("the call ended before its request was read",
                                                               self.retry_after_s))
        if request is None:  # a client that streamed no message; a unary client cannot
            return self._refused(svc, "invalid", invalid_argument("the call carried no request message"))
        self.telemetry.request_size.labels(svc.signal).observe(len(request))
        return request

    def _refusal(self, svc: SignalService) -> grpc.Status | None:
        """UNAVAILABLE if no request of any size could be taken now (shutdown, a full buffer), else None."""
        if self.shutting_down:
            return self._refused(svc, "shutdown", unavailable("shutting down", self.retry_after_s))
        return self._throttled(svc)

    def _throttled(self, svc: SignalService, requests: int = 1) -> grpc.Status | None:
        """UNAVAILABLE with RetryInfo for `requests` requests if the buffer takes nothing now, else None."""
        if self.buffer.accepting():  # without the buffer's lock, which the WAL append before may be holding
            return None
        try:
            self.buffer.admit()
        except BufferFullError as exc:
            return self._refused(svc, "throttled", unavailable(str(exc), exc.retry_after_s), requests=requests)
        return None

    def _answer(self, svc: SignalService, request: bytes) -> Outcome:
        mine = _Queued(svc, request)
        group = self._take_slot(mine)
        if group:
            self._convert_group(svc, group)
        mine.done.wait()
        if mine.outcome is None:  # the handler converting its group died of a BaseException (SystemExit)
            return self._refused(svc, "internal", unavailable("internal error: the conversion was interrupted",
                                                              self.retry_after_s))
        return mine.outcome

    def _take_slot(self, mine: _Queued) -> list[_Queued]:
        """Wait for a conversion slot or for another handler to take `mine`. With a slot, take `mine` and the
        other queued requests of its signal that fit in `group_bytes`, oldest first."""
        with self._queue_changed:
            self._queue.append(mine)
            while not mine.taken and self._busy >= self._slots:
                self._queue_changed.wait()
            if mine.taken:
                return []
            self._busy += 1
            group, size, rest = [mine], len(mine.request), []
            for q in self._queue:
                if q is not mine and q.svc is mine.svc and size + len(q.request) <= self.group_bytes:
                    group.append(q)
                    size += len(q.request)
                elif q is not mine:
                    rest.append(q)
            for q in group:
                q.taken = True
            self._queue = rest
            self._queue_changed.notify_all()
            return group

    def _release_slot(self) -> None:
        with self._queue_changed:
            self._busy -= 1
            self._queue_changed.notify_all()

    def _convert_group(self, svc: SignalService, group: list[_Queued]) -> None:
        """Convert the group holding the slot, then give the slot up before the WAL sync and answer everyone."""
        try:
            try:
                refusal = self._throttled(svc, len(group))
                if refusal is not None:  # the buffer filled while they queued: converting them would be wasted
                    for q in group:
                        q.outcome = refusal
                    return
                converted = self._conversions(svc, group)
            finally:
                self._release_slot()
            for members, request, result in converted:
                outcome = self._store(svc, request, result, len(members))
                for q in members:
                    q.outcome = outcome
        except Exception as exc:  # _store does not raise; should it, no handler may wait forever
            log.exception("unexpected error converting %s exports", svc.signal, extra={"signal": svc.signal})
            for q in group:
                if q.outcome is None:
                    q.outcome = self._refused(svc, "internal", unavailable(f"internal error: {exc!r}",
                                                                           self.retry_after_s))
        finally:
            for q in group:
                q.done.set()

    def _conversions(self, svc: SignalService,
                     group: list[_Queued]) -> list[tuple[list[_Queued], bytes, ConversionResult | Exception]]:
        """The group converted as one request when nothing in it is refused, rejected or repaired (each request
        must get its own answer) and the buffer can take it whole; otherwise each request converted alone. An
        exception is kept as its result."""
        joined = join([q.request for q in group]) if len(group) > 1 else None
        if joined is not None:
            try:
                result = self._convert(svc.signal, joined)
                if not result.rejected and not result.warnings and self.buffer.too_large(result.batches) is None:
                    return [(group, joined, result)]
            except (ConversionError, RequestTooLargeError):  # one by one below: each request gets its own answer
                pass
            except Exception as exc:  # e.g. a lost conversion worker: the same answer for all
                return [(group, joined, exc)]
        converted: list[tuple[list[_Queued], bytes, ConversionResult | Exception]] = []
        for q in group:
            try:
                converted.append(([q], q.request, self._convert(svc.signal, q.request)))
            except Exception as exc:
                converted.append(([q], q.request, exc))
        return converted

    def _store(self, svc: SignalService, request: bytes, converted: ConversionResult | Exception,
               requests: int) -> Outcome:
        """Buffer a converted request's batches and log its bytes in the WAL (`requests` requests joined into
        one): the answer for each of them."""
        result = converted if isinstance(converted, ConversionResult) else None
        try:
            if isinstance(converted, Exception):
                raise converted
            if converted.batches:
                if self.wal is None:
                    self.buffer.offer(converted.batches)
                else:
                    wal = self.wal
                    lsn = self.buffer.offer(converted.batches, lambda: wal.append(svc.signal, request))
                    wal.sync(lsn)
            return self._response(svc, converted, requests)
        except ConversionError as exc:
            log.warning("rejected undecodable %s request", svc.signal,
                        extra={"signal": svc.signal, "bytes": len(request), "error": str(exc)})
            return self._refused(svc, "invalid", invalid_argument(str(exc)))
        except BufferFullError as exc:
            return self._refused(svc, "throttled", unavailable(str(exc), exc.retry_after_s), result, requests)
        except RequestTooLargeError as exc:
            log.warning("refused a %s request larger than the buffer", svc.signal,
                        extra={"signal": svc.signal, "bytes": len(request), "error": str(exc)})
            return self._refused(svc, "too_large", resource_exhausted(str(exc)), result, requests)
        except ConverterLostError as exc:
            log.error("refusing an export: its conversion worker exited", extra={"signal": svc.signal,
                                                                             "bytes": len(request)})
            return self._refused(svc, "internal", unavailable(str(exc), self.retry_after_s), None, requests)
        except WalError as exc:
            log.error("refusing an export: the WAL cannot be written", extra={"signal": svc.signal, "error": str(exc)})
            return self._refused(svc, "wal", unavailable(str(exc), self.retry_after_s), result, requests)
        except Exception as exc:  # a bug must not turn into data loss: ask the client to retry
            log.exception("unexpected error handling %s export", svc.signal, extra={"signal": svc.signal})
            return self._refused(svc, "internal", unavailable(f"internal error: {exc!r}", self.retry_after_s), result,
                                 requests)

    def _response(self, svc: SignalService, result: ConversionResult, requests: int = 1) -> Message:
        t = self.telemetry
        t.accepted_items.labels(svc.signal).inc(result.accepted)
        for reason, count in result.reasons.items():
            t.partial_rejected_items.labels(svc.signal, reason).inc(count)
        if not result.rejected and not result.warnings:
            t.requests.labels(svc.signal, "success", "OK").inc(requests)
            return svc.response()
        t.requests.labels(svc.signal, "partial_success", "OK").inc()
        message = result.message()
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 3] + "..."
        log.warning("partial success", extra={"signal": svc.signal, "accepted": result.accepted,
                                              "rejected": result.rejected, "reason": message})
        return svc.response(partial_success=svc.partial(result.rejected, message))

    def export_function(self, svc: SignalService) -> Callable[[Iterator[bytes], grpc.ServicerContext], Message]:
        def export(messages: Iterator[bytes], context: grpc.ServicerContext) -> Message:
            outcome = self.handle_unread(svc, messages)
            if isinstance(outcome, Message):
                return outcome
            # What abort_with_status does, spelled out: the rich status travels in the trailers.
            context.set_trailing_metadata(outcome.trailing_metadata)
            context.abort(outcome.code, outcome.details)  # raises; grpcio sends the status
            raise AssertionError("unreachable")

        return export

    def method_handler(self, svc: SignalService) -> grpc.RpcMethodHandler:
        # Served as client-streaming, the same as unary on the wire, so that the handler runs before the request
        # is read (see `handle_unread`). No request deserializer: the converter parses the raw bytes once.
        return grpc.stream_unary_rpc_method_handler(self.export_function(svc),
                                                    response_serializer=lambda m: m.SerializeToString())

    def generic_handlers(self) -> list[grpc.GenericRpcHandler]:
        return [grpc.method_handlers_generic_handler(svc.service, {"Export": self.method_handler(svc)})
                for svc in SERVICES]
