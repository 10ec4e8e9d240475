"""Conversion in worker processes gives what conversion in the server process gives, and a lost worker costs
only a retry."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from bench.workload import requests
from otlp2parquet.buffer import Buffer
from otlp2parquet.config import BufferSettings
from otlp2parquet.convert import CONVERTERS
from otlp2parquet.convert.pool import ConversionPool
from otlp2parquet.errors import ConversionError, ConverterLostError, RequestTooLargeError
from otlp2parquet.receiver import SERVICES, Receiver
from tests.otlp import swollen


@pytest.fixture(scope="module")
def pool() -> Iterator[ConversionPool]:
    pool = ConversionPool(2)
    pool.start()
    yield pool
    pool.close()


def _kill_workers(pool: ConversionPool) -> None:
    for pid in pool.pids():
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)  # the executor notices the dead workers and marks itself broken


def _with_rejections() -> bytes:
    req = trace_service_pb2.ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    spans.add(trace_id=b"\x02" * 16, span_id=b"\x01" * 8, name="good")
    spans.add(trace_id=b"\x02" * 16, span_id=b"\x01" * 3, name="bad span id")
    return req.SerializeToString()


@pytest.mark.parametrize("signal_name", ["traces", "logs", "metrics"])
def test_a_worker_converts_exactly_as_the_server_process_does(pool: ConversionPool, signal_name: str) -> None:
    request = next(requests(signal_name, 200, 1, seed=7))
    here, there = CONVERTERS[signal_name](request), pool.convert(signal_name, request)
    assert there.batches.keys() == here.batches.keys()
    for table, batch in here.batches.items():
        assert there.batches[table].equals(batch), table
    assert (there.accepted, there.rejected) == (here.accepted, here.rejected)


def test_rejections_and_their_reasons_cross_the_process_boundary(pool: ConversionPool) -> None:
    here, there = CONVERTERS["traces"](_with_rejections()), pool.convert("traces", _with_rejections())
    assert (there.accepted, there.rejected) == (1, 1)
    assert there.reasons == here.reasons and there.message() == here.message()


def test_undecodable_bytes_are_still_a_conversion_error(pool: ConversionPool) -> None:
    with pytest.raises(ConversionError, match="cannot decode logs request"):
        pool.convert("logs", b"\x0a\xff\xff\xff garbage")


def test_ctrl_c_is_left_to_the_server(pool: ConversionPool) -> None:
    """Ctrl-C reaches the whole process group; the workers must outlive it until the server has drained."""
    pids = pool.pids()
    for pid in pids:
        os.kill(pid, signal.SIGINT)
    time.sleep(0.3)
    assert pool.pids() == pids and len(pids) == 2
    assert pool.convert("logs", next(requests("logs", 10, 1))).accepted == 10


def test_a_killed_worker_costs_one_retryable_error_and_the_pool_recovers() -> None:
    pool = ConversionPool(1)
    try:
        before = pool.start()
        _kill_workers(pool)
        with pytest.raises(ConverterLostError, match="conversion worker exited"):
            pool.convert("traces", next(requests("traces", 10, 1)))
        assert pool.convert("traces", next(requests("traces", 10, 1))).accepted == 10
        assert pool.pids() and pool.pids() != before
    finally:
        pool.close()


def test_the_receiver_answers_unavailable_and_buffers_nothing_when_a_worker_is_lost() -> None:
    pool = ConversionPool(1)
    try:
        pool.start()
        receiver = Receiver(Buffer(BufferSettings(retry_after_s=1.5)), convert=pool.convert)
        traces = next(svc for svc in SERVICES if svc.signal == "traces")
        _kill_workers(pool)
        outcome = receiver.handle(traces, next(requests("traces", 10, 1)))
        assert isinstance(outcome, grpc.Status) and outcome.code is grpc.StatusCode.UNAVAILABLE
        assert "conversion worker exited" in outcome.details
        assert receiver.buffer.used_bytes == 0
        again = receiver.handle(traces, next(requests("traces", 10, 1)))
        assert not isinstance(again, grpc.Status)
        assert sum(rows for rows, _ in receiver.buffer.stats().values()) == 10
    finally:
        pool.close()


def test_workers_stop_a_conversion_at_the_pool_s_limit() -> None:
    """The limit reaches the workers, and the refusal comes back as the in-process converters raise it."""
    pool = ConversionPool(1, limit=10 * 2**20)
    try:
        with pytest.raises(RequestTooLargeError, match=r"budget \(10485760 bytes"):
            pool.convert("traces", swollen("traces", 5000, 64_000))
        assert pool.convert("traces", next(requests("traces", 10, 1))).accepted == 10
    finally:
        pool.close()
