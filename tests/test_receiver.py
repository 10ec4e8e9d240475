"""Servicer tests without sockets (grpcio-testing): every status-code path of Export."""

from __future__ import annotations

import grpc
import grpc_testing
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from bench.workload import requests
from otlp2parquet.buffer import Buffer
from otlp2parquet.config import BufferSettings
from otlp2parquet.receiver import SERVICES, Receiver

DESCRIPTORS = {
    "traces": trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"],
    "logs": logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"],
    "metrics": metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"],
}


class Servicer:
    def __init__(self, export: object) -> None:
        self.Export = export


def _server(receiver: Receiver) -> grpc_testing.Server:
    servicers = {DESCRIPTORS[svc.signal]: Servicer(receiver.export_function(svc)) for svc in SERVICES}
    return grpc_testing.server_from_dictionary(servicers, grpc_testing.strict_real_time())


def _export(receiver: Receiver, signal: str, payload: bytes) -> tuple[object, tuple, grpc.StatusCode, str]:
    method = DESCRIPTORS[signal].methods_by_name["Export"]
    rpc = _server(receiver).invoke_unary_unary(method, (), payload, None)
    return rpc.termination()


def _receiver(**limits: float) -> Receiver:
    return Receiver(Buffer(BufferSettings(retry_after_s=3.5, **limits)))


def _retry_delay(receiver: Receiver, signal: str, payload: bytes) -> float:
    """grpc_testing drops trailers on abort, so read the RetryInfo off the status the handler aborts with."""
    outcome = receiver.handle(next(svc for svc in SERVICES if svc.signal == signal), payload)
    assert isinstance(outcome, grpc.Status) and outcome.code is grpc.StatusCode.UNAVAILABLE
    details = dict(outcome.trailing_metadata)["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
def test_success_leaves_partial_success_unset_and_buffers_rows(signal: str) -> None:
    receiver = _receiver()
    response, _, code, _ = _export(receiver, signal, next(requests(signal, 50, 1)))
    assert code is grpc.StatusCode.OK
    assert not response.HasField("partial_success")
    assert sum(rows for rows, _ in receiver.buffer.stats().values()) == 50


def test_rejected_records_are_reported_in_partial_success() -> None:
    req = trace_service_pb2.ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    spans.add(span_id=b"\x01" * 8, name="good")
    spans.add(span_id=b"\x01" * 3, name="bad")
    receiver = _receiver()
    response, _, code, _ = _export(receiver, "traces", req.SerializeToString())
    assert code is grpc.StatusCode.OK
    assert response.partial_success.rejected_spans == 1
    assert response.partial_success.error_message == "1 rejected: spans with span_id must be 0 or 8 bytes"
    assert receiver.buffer.stats() == {"traces": (1, receiver.buffer.used_bytes)}


def test_repaired_utf8_is_a_warning_with_nothing_rejected() -> None:
    req = logs_service_pb2.ExportLogsServiceRequest()
    req.resource_logs.add().scope_logs.add().log_records.add(severity_text="MARKER")
    payload = req.SerializeToString().replace(b"MARKER", b"\xffARKER")
    response, _, code, _ = _export(_receiver(), "logs", payload)
    assert code is grpc.StatusCode.OK
    assert response.partial_success.rejected_log_records == 0
    assert "invalid UTF-8" in response.partial_success.error_message


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
def test_undecodable_request_gets_invalid_argument(signal: str) -> None:
    receiver = _receiver()
    _, _, code, details = _export(receiver, signal, b"\x0a\xff\xff\xff garbage")
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert f"cannot decode {signal} request" in details
    assert receiver.buffer.used_bytes == 0


def test_full_buffer_gets_unavailable_with_retry_info() -> None:
    receiver = _receiver(memory_budget_bytes=2_000_000, high_water_fraction=0.5)
    payload = next(requests("logs", 50, 1))
    while receiver.buffer.accepting():
        _, _, code, _ = _export(receiver, "logs", payload)
        assert code is grpc.StatusCode.OK
    before = receiver.buffer.stats()
    _, _, code, details = _export(receiver, "logs", payload)
    assert code is grpc.StatusCode.UNAVAILABLE
    assert "high-water" in details
    assert _retry_delay(receiver, "logs", payload) == 3.5
    assert receiver.buffer.stats() == before


def test_shutdown_gets_unavailable_with_retry_info() -> None:
    receiver = _receiver()
    receiver.shutting_down = True
    payload = next(requests("traces", 5, 1))
    _, _, code, _ = _export(receiver, "traces", payload)
    assert code is grpc.StatusCode.UNAVAILABLE and _retry_delay(receiver, "traces", payload) == 3.5


def test_an_unexpected_error_is_retryable_not_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = _receiver()

    def broken(batches: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(receiver.buffer, "offer", broken)
    payload = next(requests("logs", 5, 1))
    _, _, code, details = _export(receiver, "logs", payload)
    assert code is grpc.StatusCode.UNAVAILABLE
    assert "disk on fire" in details and _retry_delay(receiver, "logs", payload) == 3.5


def test_empty_request_is_a_plain_success() -> None:
    receiver = _receiver()
    response, _, code, _ = _export(receiver, "metrics", b"")
    assert code is grpc.StatusCode.OK and not response.HasField("partial_success")
    assert receiver.buffer.stats() == {}
