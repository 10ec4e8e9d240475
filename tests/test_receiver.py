"""Servicer tests without sockets (grpcio-testing): every status-code path of Export; and, over a socket, what
the server reads of a request it refuses."""

from __future__ import annotations

import contextlib
import pathlib
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import grpc_testing
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from bench.workload import requests
from otlp2parquet.buffer import Buffer, arrow_bytes
from otlp2parquet.config import BufferSettings, WalSettings
from otlp2parquet.convert import CONVERTERS, ConversionResult
from otlp2parquet.receiver import SERVICES, Outcome, Receiver
from otlp2parquet.wal import WriteAheadLog
from tests.integration.server import retry_info
from tests.otlp import swollen
from tests.waiting import wait_for

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
    rpc = _server(receiver).invoke_stream_unary(method, (), None)  # how the receiver serves Export; same wire
    rpc.send_request(payload)
    rpc.requests_closed()
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


class _CountingProxy:
    """Forwards TCP connections to `port`, counting the bytes that go towards it: what the server took in."""

    def __init__(self, port: int) -> None:
        self.target, self.forwarded = port, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, towards_server: bool) -> None:
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
                if towards_server:
                    self.forwarded += len(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):  # the other direction got there first
                    end.shutdown(socket.SHUT_RDWR)


def _export_over_socket(receiver: Receiver, payload: bytes) -> tuple[grpc.RpcError | None, int]:
    """Export `payload` as logs through a real server: (the error, if any; bytes the server took in)."""
    server = grpc.server(ThreadPoolExecutor(2), handlers=receiver.generic_handlers(),
                         options=[("grpc.max_receive_message_length", 64 << 20)])
    proxy = _CountingProxy(server.add_insecure_port("127.0.0.1:0"))
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{proxy.port}",
                                   options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
            try:
                channel.unary_unary(f"/{DESCRIPTORS['logs'].full_name}/Export")(payload, timeout=30)
                return None, proxy.forwarded
            except grpc.RpcError as exc:
                return exc, proxy.forwarded
    finally:
        server.stop(0)
        proxy.listener.close()


def test_a_refused_export_is_not_read_off_the_socket() -> None:
    """A saturated sidecar refuses most exports; taking each one in before refusing it cost the server more
    CPU than the refusal (docs/design.md item 15)."""
    receiver = _receiver(memory_budget_bytes=2_000_000, high_water_fraction=0.5)
    payload = next(requests("logs", 50, 1))
    logs = next(svc for svc in SERVICES if svc.signal == "logs")
    while receiver.buffer.accepting():
        assert isinstance(receiver.handle(logs, payload), logs_service_pb2.ExportLogsServiceResponse)
    big = b"\xff" * (32 << 20)  # not a request at all, which only reading it would find
    error, forwarded = _export_over_socket(receiver, big)
    assert error is not None and error.code() is grpc.StatusCode.UNAVAILABLE
    assert retry_info(error).retry_delay.ToTimedelta().total_seconds() == 3.5
    assert forwarded < len(big) // 4, f"the server took in {forwarded} bytes of a request it refused"
    # With room, the same request is read whole, and found to be no OTLP request.
    error, forwarded = _export_over_socket(_receiver(), big)
    assert error is not None and error.code() is grpc.StatusCode.INVALID_ARGUMENT and forwarded >= len(big)


def _rows_bytes(signal: str, payload: bytes) -> int:
    return sum(map(arrow_bytes, CONVERTERS[signal](payload).batches.values()))


def test_a_request_larger_than_the_whole_buffer_is_refused_for_good_and_says_why() -> None:
    """UNAVAILABLE would have the Collector retry it for minutes, though no flush can ever make that much room."""
    big, small = next(requests("logs", 200, 1, seed=2)), next(requests("logs", 20, 1, seed=2))
    receiver = _receiver(memory_budget_bytes=_rows_bytes("logs", big) - 1)
    _, _, code, details = _export(receiver, "logs", big)
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "more than the buffer's whole budget" in details and "buffer.memory_budget_bytes" in details
    outcome = receiver.handle(next(svc for svc in SERVICES if svc.signal == "logs"), big)
    assert isinstance(outcome, grpc.Status)
    details_bin = dict(outcome.trailing_metadata)["grpc-status-details-bin"]
    assert not status_pb2.Status.FromString(details_bin).details, "no RetryInfo: the client must not retry"
    assert receiver.buffer.used_bytes == 0
    refused = receiver.telemetry.registry.get_sample_value("otlp2parquet_receiver_refused_items_total",
                                                           {"signal": "logs", "reason": "too_large"})
    assert refused == 400, "both exports of 200 records"
    _, _, code, _ = _export(receiver, "logs", small)
    assert code is grpc.StatusCode.OK, "smaller requests are still taken"


@pytest.mark.parametrize("signal", ["logs", "traces", "metrics"])
def test_a_small_request_whose_rows_would_dwarf_the_buffer_is_refused_while_converting(signal: str) -> None:
    """Every row repeats its resource's attributes: 5,000 empty items under 64 KB of them are 320 MB of rows.
    The conversion stops at the budget, so nothing is buffered and the memory was never taken."""
    receiver = _receiver()
    _, _, code, details = _export(receiver, signal, swollen(signal, 5000, 64_000))
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "rows take at least" in details and "buffer.memory_budget_bytes" in details
    outcome = receiver.handle(next(svc for svc in SERVICES if svc.signal == signal), swollen(signal, 5000, 64_000))
    assert isinstance(outcome, grpc.Status)
    assert not status_pb2.Status.FromString(dict(outcome.trailing_metadata)["grpc-status-details-bin"]).details
    assert receiver.buffer.used_bytes == 0
    refused = receiver.telemetry.registry.get_sample_value("otlp2parquet_receiver_refused_requests_total",
                                                           {"signal": signal, "reason": "too_large"})
    assert refused == 2, "no item count: the conversion stopped before it had one"


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


class _Gate:
    """The real converter (with `limit`, as the receiver's own), holding its first call until released so that
    the requests after it queue up."""

    def __init__(self, limit: int | None = None) -> None:
        self.release = threading.Event()
        self.calls: list[int] = []  # request bytes per call
        self.limit = limit

    def __call__(self, signal: str, request: bytes) -> ConversionResult:
        self.calls.append(len(request))
        if len(self.calls) == 1:
            assert self.release.wait(10)
        return CONVERTERS[signal](request, self.limit)


def _behind_a_busy_conversion(receiver: Receiver, gate: _Gate, signal: str, first: bytes,
                              queued: list[bytes]) -> tuple[Outcome | None, list[Outcome | None]]:
    """Export `first`, and `queued` while `first` is being converted; the outcome of each (None for a handler
    thread that died without one)."""
    svc = next(s for s in SERVICES if s.signal == signal)
    outcomes: dict[int, Outcome] = {}

    def send(i: int, payload: bytes) -> None:
        outcomes[i] = receiver.handle(svc, payload)

    threads = [threading.Thread(target=send, args=(-1, first))]
    threads[0].start()
    assert wait_for(lambda: gate.calls), "the first conversion starts"
    threads += [threading.Thread(target=send, args=(i, p)) for i, p in enumerate(queued)]
    for t in threads[1:]:
        t.start()
    assert wait_for(lambda: receiver.queued == len(queued)), "the others wait for the conversion slot"
    gate.release.set()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads), "every handler finishes"
    return outcomes.get(-1), [outcomes.get(i) for i in range(len(queued))]


def test_requests_queued_behind_a_conversion_are_converted_and_logged_together(tmp_path: pathlib.Path) -> None:
    wal = WriteAheadLog(tmp_path, WalSettings())
    wal.open(next_lsn=wal.recover() + 1)
    gate = _Gate()
    receiver = Receiver(Buffer(BufferSettings()), wal, convert=gate)
    payloads = list(requests("logs", 100, 5, seed=3))
    first, rest = _behind_a_busy_conversion(receiver, gate, "logs", payloads[0], payloads[1:])
    for outcome in [first, *rest]:
        assert isinstance(outcome, logs_service_pb2.ExportLogsServiceResponse)
        assert not outcome.HasField("partial_success")
    assert gate.calls == [len(payloads[0]), sum(map(len, payloads[1:]))], "one conversion for the four queued"
    assert receiver.buffer.stats()["logs"][0] == 500
    wal.close()
    again = WriteAheadLog(tmp_path, WalSettings())
    again.recover()
    records = list(again.replay(after=0))
    assert len(records) == 2, "one WAL record (and one sync) for the group"
    replayed = sum(CONVERTERS["logs"](r.payload).accepted for r in records)
    assert replayed == 500, "the group's record replays every queued request's records"


def test_a_group_with_a_bad_request_answers_each_request_as_if_it_came_alone() -> None:
    gate = _Gate()
    receiver = Receiver(Buffer(BufferSettings()), convert=gate)
    bad_span = trace_service_pb2.ExportTraceServiceRequest()
    spans = bad_span.resource_spans.add().scope_spans.add().spans
    spans.add(span_id=b"\x01" * 8, name="good")
    spans.add(span_id=b"\x01" * 3, name="bad")
    good = next(requests("traces", 20, 1, seed=4))
    queued = [good, bad_span.SerializeToString(), b"\x0a\xff\xff\xff garbage", good]
    _, (ok, partial, invalid, ok_again) = _behind_a_busy_conversion(
        receiver, gate, "traces", next(requests("traces", 10, 1, seed=5)), queued)
    assert isinstance(ok, trace_service_pb2.ExportTraceServiceResponse) and not ok.HasField("partial_success")
    assert isinstance(partial, trace_service_pb2.ExportTraceServiceResponse)
    assert partial.partial_success.rejected_spans == 1
    assert isinstance(invalid, grpc.Status) and invalid.code is grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(ok_again, trace_service_pb2.ExportTraceServiceResponse)
    assert not ok_again.HasField("partial_success")
    assert receiver.buffer.stats()["traces"][0] == 10 + 20 + 1 + 20


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the SystemExit, on purpose
def test_a_group_whose_converting_handler_dies_gets_unavailable_not_an_error() -> None:
    class _Dying(_Gate):
        def __call__(self, signal: str, request: bytes) -> ConversionResult:
            if self.calls:
                self.calls.append(len(request))
                raise SystemExit  # ends the handler thread that converts the group
            return super().__call__(signal, request)

    gate = _Dying()
    receiver = Receiver(Buffer(BufferSettings(retry_after_s=3.5)), convert=gate)
    payloads = list(requests("logs", 10, 4, seed=8))
    first, queued = _behind_a_busy_conversion(receiver, gate, "logs", payloads[0], payloads[1:])
    assert len(gate.calls) == 2, "the three queued requests were one group"
    assert isinstance(first, logs_service_pb2.ExportLogsServiceResponse)
    assert queued.count(None) == 1, "the handler that converted the group died; the other two got answers"
    for outcome in filter(None, queued):
        assert isinstance(outcome, grpc.Status) and outcome.code is grpc.StatusCode.UNAVAILABLE


def test_a_group_too_large_for_the_buffer_is_converted_again_request_by_request() -> None:
    """Each request fits alone, so none may get the permanent answer meant for a request that never fits."""
    gate = _Gate()
    payloads = list(requests("logs", 100, 4, seed=9))
    largest = max(_rows_bytes("logs", p) for p in payloads)
    receiver = Receiver(Buffer(BufferSettings(memory_budget_bytes=int(2.5 * largest), high_water_fraction=1.0,
                                              retry_after_s=3.5)), convert=gate)
    first, queued = _behind_a_busy_conversion(receiver, gate, "logs", payloads[0], payloads[1:])
    assert gate.calls[:2] == [len(payloads[0]), sum(map(len, payloads[1:]))], "the first, then the group"
    assert sorted(gate.calls[2:]) == sorted(map(len, payloads[1:])), "then each queued request (in queue order)"
    assert isinstance(first, logs_service_pb2.ExportLogsServiceResponse)
    accepted = [o for o in queued if isinstance(o, logs_service_pb2.ExportLogsServiceResponse)]
    refused = [o for o in queued if isinstance(o, grpc.Status)]
    assert len(accepted) == 1, "one more request fits beside the first"
    assert [o.code for o in refused] == [grpc.StatusCode.UNAVAILABLE] * 2, "the buffer is full: retry, not drop"
    assert receiver.buffer.stats()["logs"][0] == 200


def test_requests_that_queued_while_the_buffer_filled_are_refused_without_being_converted() -> None:
    """At saturation most exports used to be converted and then refused, the conversion thrown away: a
    request admitted while there was room can reach the conversion slot after the buffer has filled."""
    gate = _Gate()
    first, filler = next(requests("logs", 100, 1, seed=10)), next(requests("logs", 300, 1, seed=11))
    held, size = _rows_bytes("logs", filler), _rows_bytes("logs", first)
    budget = 2 * (held + size)  # room for the first beside the filler; above the high-water mark with it
    settings = BufferSettings(memory_budget_bytes=budget, high_water_fraction=(held + size / 2) / budget,
                              retry_after_s=3.5)
    receiver = Receiver(Buffer(settings), convert=gate)
    receiver.buffer.offer(CONVERTERS["logs"](filler).batches)
    queued = list(requests("logs", 50, 3, seed=12))
    done, refused = _behind_a_busy_conversion(receiver, gate, "logs", first, queued)
    assert isinstance(done, logs_service_pb2.ExportLogsServiceResponse)
    assert gate.calls == [len(first)], "the queued requests were not converted"
    for outcome in refused:
        assert isinstance(outcome, grpc.Status) and outcome.code is grpc.StatusCode.UNAVAILABLE
    assert _retry_delay(receiver, "logs", queued[0]) == 3.5
    assert receiver.buffer.stats()["logs"][0] == 400


def test_a_group_holding_a_request_too_large_to_convert_answers_each_request_as_if_it_came_alone() -> None:
    """The group's conversion stops at the budget; converted one by one, only the swollen request is refused."""
    gate = _Gate(limit=BufferSettings().memory_budget_bytes)
    receiver = Receiver(Buffer(BufferSettings(retry_after_s=3.5)), convert=gate)
    normal = list(requests("logs", 50, 2, seed=4))
    first, queued = _behind_a_busy_conversion(receiver, gate, "logs", normal[0],
                                              [normal[1], swollen("logs", 5000, 64_000)])
    assert len(gate.calls) == 4, "the first, the group, then each queued request"
    assert isinstance(first, logs_service_pb2.ExportLogsServiceResponse)
    answers = sorted(o.code.name if isinstance(o, grpc.Status) else "OK" for o in queued)
    assert answers == ["OK", "RESOURCE_EXHAUSTED"]
    assert receiver.buffer.stats()["logs"][0] == 100


def test_a_group_is_no_larger_than_group_bytes() -> None:
    gate = _Gate()
    payloads = list(requests("metrics", 50, 5, seed=6))
    receiver = Receiver(Buffer(BufferSettings()), convert=gate, group_bytes=2 * max(map(len, payloads)))
    _behind_a_busy_conversion(receiver, gate, "metrics", payloads[0], payloads[1:])
    assert len(gate.calls) == 3 and all(n <= receiver.group_bytes for n in gate.calls)
    assert sum(gate.calls) == sum(map(len, payloads))


def test_a_conversion_does_not_wait_for_another_request_s_wal_sync(tmp_path: pathlib.Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    wal = WriteAheadLog(tmp_path, WalSettings())
    wal.open(next_lsn=wal.recover() + 1)
    syncing, disk_back = threading.Event(), threading.Event()
    real_sync = wal.sync

    def slow_sync(lsn: int) -> None:
        if not syncing.is_set():
            syncing.set()
            assert disk_back.wait(60)
        real_sync(lsn)

    monkeypatch.setattr(wal, "sync", slow_sync)
    converted: list[int] = []
    receiver = Receiver(Buffer(BufferSettings()), wal,
                        convert=lambda signal, request: converted.append(1) or CONVERTERS[signal](request))
    svc = next(s for s in SERVICES if s.signal == "logs")
    first, second = requests("logs", 10, 2, seed=9)
    outcomes: list[Outcome] = []
    threads = [threading.Thread(target=lambda p=p: outcomes.append(receiver.handle(svc, p))) for p in (first, second)]
    threads[0].start()
    assert syncing.wait(10)
    threads[1].start()
    converting = wait_for(lambda: len(converted) == 2, timeout=5)
    disk_back.set()
    for t in threads:
        t.join(10)
    assert converting, "the second request converts while the first one's WAL sync is slow"
    assert all(isinstance(o, logs_service_pb2.ExportLogsServiceResponse) for o in outcomes)
    assert receiver.buffer.stats()["logs"][0] == 20
    wal.close()


def test_a_call_that_ends_before_its_request_is_read_is_answered_not_raised() -> None:
    """gRPC's request iterator raises when the client cancels or its deadline passes while the handler waits
    for the request; an exception leaving the handler would be logged as a crash and answered UNKNOWN."""
    def ended() -> Iterator[bytes]:
        raise grpc.RpcError()
        yield b""  # a generator: it raises at the first next()

    receiver = _receiver()
    logs = next(svc for svc in SERVICES if svc.signal == "logs")
    outcome = receiver.handle_unread(logs, ended())
    assert isinstance(outcome, grpc.Status) and outcome.code is grpc.StatusCode.UNAVAILABLE
    assert receiver.telemetry.registry.get_sample_value("otlp2parquet_receiver_refused_requests_total",
                                                        {"signal": "logs", "reason": "cancelled"}) == 1
    assert receiver.buffer.used_bytes == 0
