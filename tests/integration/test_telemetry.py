"""/metrics scraped during an end-to-end run, checked against what was sent; /healthz and /ready."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from bench.load import METHODS
from bench.workload import requests
from otlp2parquet.config import BufferSettings
from tests.integration.server import ServerProcess, get, scrape

pytestmark = pytest.mark.integration
TRACES = METHODS["traces"]
LOGS = METHODS["logs"]


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_what_was_sent(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(env={"OTLP2PARQUET_BUFFER__MAX_AGE_S": "0.3"})
    assert get(server, "/healthz") == (200, "ok\n")
    assert get(server, "/ready") == (200, "ready\n")
    response = trace_service_pb2.ExportTraceServiceResponse
    call = server.channel.unary_unary(TRACES, response_deserializer=response.FromString)
    for payload in requests("traces", 20, 3, seed=1):
        call(payload, timeout=10)
    bad = logs_service_pb2.ExportLogsServiceRequest()
    records = bad.resource_logs.add().scope_logs.add().log_records
    records.add(span_id=b"\x01" * 8)
    records.add(span_id=b"\x01" * 3)
    logs = server.channel.unary_unary(LOGS, response_deserializer=logs_service_pb2.ExportLogsServiceResponse.FromString)
    assert logs(bad.SerializeToString(), timeout=10).partial_success.rejected_log_records == 1
    with pytest.raises(grpc.RpcError):
        call(b"\xff\xff not protobuf", timeout=10)
    deadline = time.monotonic() + 20
    while value(scrape(server), "otlp2parquet_sink_written_rows_total", table="traces") < 60:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.2)
    m = scrape(server)
    assert value(m, "otlp2parquet_receiver_requests_total", signal="traces", outcome="success", grpc_code="OK") == 3
    assert value(m, "otlp2parquet_receiver_requests_total", signal="logs", outcome="partial_success",
                 grpc_code="OK") == 1
    assert value(m, "otlp2parquet_receiver_requests_total", signal="traces", outcome="refused",
                 grpc_code="INVALID_ARGUMENT") == 1
    assert value(m, "otlp2parquet_receiver_refused_requests_total", signal="traces", reason="invalid") == 1
    assert value(m, "otlp2parquet_receiver_accepted_items_total", signal="traces") == 60
    assert value(m, "otlp2parquet_receiver_accepted_items_total", signal="logs") == 1
    assert value(m, "otlp2parquet_receiver_partial_rejected_items_total", signal="logs",
                 reason="log records with span_id must be 0 or 8 bytes") == 1
    assert value(m, "otlp2parquet_request_size_bytes_count", signal="traces") == 4
    assert value(m, "otlp2parquet_export_duration_seconds_count", signal="traces") == 4
    assert 0 < value(m, "otlp2parquet_export_duration_seconds_sum", signal="traces") < 60
    assert value(m, "otlp2parquet_gc_frozen_objects") > 10_000, "the start-up heap is exempt from full collections"
    assert value(m, "otlp2parquet_gc_pause_seconds_count", generation="0") > 0, "collections since are timed"
    assert value(m, "otlp2parquet_sink_written_rows_total", table="traces") == 60
    assert value(m, "otlp2parquet_iceberg_commits_total", table="traces", outcome="ok") >= 1
    assert value(m, "otlp2parquet_sink_files_total", table="traces") >= 1
    assert value(m, "otlp2parquet_flush_duration_seconds_count", table="traces") >= 1
    assert value(m, "otlp2parquet_buffer_capacity_bytes") == BufferSettings().memory_budget_bytes
    assert value(m, "otlp2parquet_conversion_queue_requests") == 0, "every export was answered"
    assert value(m, "otlp2parquet_wal_bytes") > 0
    assert value(m, "otlp2parquet_ready") == 1
    assert value(m, "process_resident_memory_bytes") > 0
    assert server.stop() == 0


def test_ready_turns_503_above_the_high_water_mark(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(env={"OTLP2PARQUET_BUFFER__MEMORY_BUDGET_BYTES": "400000",
                               "OTLP2PARQUET_BUFFER__HIGH_WATER_FRACTION": "0.5",
                               "OTLP2PARQUET_BUFFER__MAX_AGE_S": "3600"})
    call = server.channel.unary_unary(LOGS)
    call(next(requests("logs", 10, 1, seed=3)), timeout=10)  # creates nothing yet: tables come with the first flush
    lock = sqlite3.connect(server.base / "catalog.db", timeout=30)
    lock.execute("BEGIN EXCLUSIVE")  # no commit can land: the buffer cannot drain
    refused = 0
    for payload in requests("logs", 200, 10, seed=2):
        try:
            call(payload, timeout=10)
        except grpc.RpcError as exc:
            assert exc.code() is grpc.StatusCode.UNAVAILABLE
            refused += 1
    assert refused > 0
    assert get(server, "/ready") == (503, "not ready\n")
    assert get(server, "/healthz") == (200, "ok\n"), "liveness does not depend on the catalog"
    lock.rollback()
    lock.close()
    deadline = time.monotonic() + 60
    while get(server, "/ready")[0] != 200:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.3)
    assert server.stop() == 0, server.log()
