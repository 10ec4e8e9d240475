"""The OTLP gRPC receiver: three `Export` RPCs taking raw request bytes, so each request is decoded once.

Every outcome maps to the status the Collector handles correctly (its retry table):
- success: a response with `partial_success` unset;
- records rejected by the converter: `partial_success` with the count and the reasons (never retried);
- bytes that are not an OTLP request: INVALID_ARGUMENT (the Collector drops them, as it must);
- a full buffer, a WAL that cannot be written (disk full), shutdown, or anything unexpected: UNAVAILABLE with a
  RetryInfo delay, so the Collector keeps the data and retries. No exception ever leaves a handler: grpcio would
  answer UNKNOWN, which the Collector treats as permanent and drops.

With the WAL on, a request is acknowledged only after its bytes are in the log (and on disk, with fsync
"always"), so an acknowledged export survives a crash.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from otlp2parquet.buffer import Buffer
from otlp2parquet.convert import CONVERTERS, ConversionResult
from otlp2parquet.errors import BufferFullError, ConversionError, ConverterLostError, WalError
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


class Receiver:
    """Converts each request and offers its batches to the buffer; knows nothing of writers."""

    def __init__(self, buffer: Buffer, wal: WriteAheadLog | None = None, telemetry: Telemetry | None = None,
                 conversions: int = 1, convert: Converter | None = None) -> None:
        self.buffer = buffer
        self._convert = convert or (lambda signal, request: CONVERTERS[signal](request))
        # Conversions at once. The GIL serialises much of a conversion anyway; each one in flight holds a decoded
        # request and its intermediate arrays, and per-thread allocator heaps keep that memory after it is freed.
        self._converting = threading.BoundedSemaphore(conversions)
        self.wal = wal
        self.telemetry = telemetry or Telemetry()
        self.retry_after_s = buffer.settings.retry_after_s
        self.shutting_down = False

    def _refused(self, svc: SignalService, reason: str, status: grpc.Status,
                 result: ConversionResult | None = None) -> grpc.Status:
        t = self.telemetry
        t.requests.labels(svc.signal, "refused", status.code.name).inc()
        if result is None:
            t.refused_requests.labels(svc.signal, reason).inc()
        else:
            t.refused_items.labels(svc.signal, reason).inc(result.accepted + result.rejected)
        return status

    def handle(self, svc: SignalService, request: bytes) -> Message | grpc.Status:
        """The outcome of one Export: a response message or a status to abort with. Never raises."""
        result: ConversionResult | None = None
        try:
            self.telemetry.request_size.labels(svc.signal).observe(len(request))
            if self.shutting_down:
                return self._refused(svc, "shutdown", unavailable("shutting down", self.retry_after_s))
            self.buffer.admit()
            with self._converting:
                result = self._convert(svc.signal, request)
            if result.batches:
                if self.wal is None:
                    self.buffer.offer(result.batches)
                else:
                    wal = self.wal
                    lsn = self.buffer.offer(result.batches, lambda: wal.append(svc.signal, request))
                    wal.sync(lsn)
            return self._response(svc, result)
        except ConversionError as exc:
            log.warning("rejected undecodable %s request", svc.signal,
                        extra={"signal": svc.signal, "bytes": len(request), "error": str(exc)})
            return self._refused(svc, "invalid", invalid_argument(str(exc)))
        except BufferFullError as exc:
            return self._refused(svc, "throttled", unavailable(str(exc), exc.retry_after_s), result)
        except ConverterLostError as exc:
            log.error("refusing an export: its conversion worker exited", extra={"signal": svc.signal,
                                                                             "bytes": len(request)})
            return self._refused(svc, "internal", unavailable(str(exc), self.retry_after_s))
        except WalError as exc:
            log.error("refusing an export: the WAL cannot be written", extra={"signal": svc.signal, "error": str(exc)})
            return self._refused(svc, "wal", unavailable(str(exc), self.retry_after_s), result)
        except Exception as exc:  # a bug must not turn into data loss: ask the client to retry
            log.exception("unexpected error handling %s export", svc.signal, extra={"signal": svc.signal})
            return self._refused(svc, "internal", unavailable(f"internal error: {exc!r}", self.retry_after_s), result)

    def _response(self, svc: SignalService, result: ConversionResult) -> Message:
        t = self.telemetry
        t.accepted_items.labels(svc.signal).inc(result.accepted)
        for reason, count in result.reasons.items():
            t.partial_rejected_items.labels(svc.signal, reason).inc(count)
        if not result.rejected and not result.warnings:
            t.requests.labels(svc.signal, "success", "OK").inc()
            return svc.response()
        t.requests.labels(svc.signal, "partial_success", "OK").inc()
        message = result.message()
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 3] + "..."
        log.warning("partial success", extra={"signal": svc.signal, "accepted": result.accepted,
                                              "rejected": result.rejected, "reason": message})
        return svc.response(partial_success=svc.partial(result.rejected, message))

    def export_function(self, svc: SignalService) -> Callable[[bytes, grpc.ServicerContext], Message]:
        def export(request: bytes, context: grpc.ServicerContext) -> Message:
            outcome = self.handle(svc, request)
            if isinstance(outcome, Message):
                return outcome
            # What abort_with_status does, spelled out: the rich status travels in the trailers.
            context.set_trailing_metadata(outcome.trailing_metadata)
            context.abort(outcome.code, outcome.details)  # raises; grpcio sends the status
            raise AssertionError("unreachable")

        return export

    def method_handler(self, svc: SignalService) -> grpc.RpcMethodHandler:
        # No request deserializer: the handler gets the raw bytes and the converter parses them once.
        return grpc.unary_unary_rpc_method_handler(self.export_function(svc),
                                                   response_serializer=lambda m: m.SerializeToString())

    def generic_handlers(self) -> list[grpc.GenericRpcHandler]:
        return [grpc.method_handlers_generic_handler(svc.service, {"Export": self.method_handler(svc)})
                for svc in SERVICES]
