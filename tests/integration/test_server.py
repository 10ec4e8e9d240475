"""Server behaviour over a real socket: flush triggers, back-pressure, bad input, compression, size, modes."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
import pyarrow.parquet as pq
import pytest
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from bench.load import METHODS
from bench.workload import requests
from tests.integration.server import ServerProcess, retry_info
from tests.waiting import wait_for

pytestmark = pytest.mark.integration
TRACE_METHOD = METHODS["traces"]
LOGS_METHOD = METHODS["logs"]


def export(server: ServerProcess, method: str, payload: bytes, **kwargs: object) -> object:
    response_type = (trace_service_pb2.ExportTraceServiceResponse if "Trace" in method
                     else logs_service_pb2.ExportLogsServiceResponse)
    call = server.channel.unary_unary(method, response_deserializer=response_type.FromString)
    return call(payload, timeout=10, **kwargs)


def rows_committed(server: ServerProcess, table: str) -> int:
    try:
        snapshot = server.table(table).current_snapshot()
    except Exception:  # the table does not exist yet
        return 0
    return int(snapshot.summary.get("total-records", 0)) if snapshot else 0


def test_rows_limit_flushes_while_serving(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(env={"OTLP2PARQUET_BUFFER__MAX_ROWS": "300", "OTLP2PARQUET_BUFFER__MAX_AGE_S": "3600"})
    for payload in requests("traces", 100, 3, seed=5):
        export(server, TRACE_METHOD, payload)
    assert wait_for(lambda: rows_committed(server, "traces") == 300), server.log()
    assert server.stop() == 0


def test_bytes_limit_flushes_while_serving(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(env={"OTLP2PARQUET_BUFFER__MAX_BYTES": "100000", "OTLP2PARQUET_BUFFER__MAX_AGE_S": "3600"})
    export(server, LOGS_METHOD, next(requests("logs", 500, 1)))  # ~300 KB of Arrow data
    assert wait_for(lambda: rows_committed(server, "logs") == 500), server.log()
    assert '"reason": "bytes"' in server.log()
    assert server.stop() == 0


def test_age_timer_flushes_with_no_further_traffic(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(env={"OTLP2PARQUET_BUFFER__MAX_AGE_S": "1"})
    export(server, LOGS_METHOD, next(requests("logs", 10, 1)))
    sent = time.monotonic()
    assert wait_for(lambda: rows_committed(server, "logs") == 10, timeout=15), server.log()
    assert time.monotonic() - sent >= 0.9
    assert '"reason": "age"' in server.log()
    assert server.stop() == 0


def test_full_buffer_answers_unavailable_with_retry_info_then_recovers(
        start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(env={"OTLP2PARQUET_BUFFER__MEMORY_BUDGET_BYTES": "3000000",
                               "OTLP2PARQUET_BUFFER__HIGH_WATER_FRACTION": "0.5",
                               "OTLP2PARQUET_BUFFER__MAX_AGE_S": "3600",
                               "OTLP2PARQUET_BUFFER__RETRY_AFTER_S": "1.5"})
    accepted = 0
    payload = next(requests("logs", 1000, 1))
    with pytest.raises(grpc.RpcError) as refused:
        for _ in range(50):
            export(server, LOGS_METHOD, payload)
            accepted += 1000
    error = refused.value
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    info = retry_info(error)
    assert (info.retry_delay.seconds, info.retry_delay.nanos) == (1, 500_000_000)
    # The refusal makes every table flush now (not in an hour), which frees the budget again.
    assert wait_for(lambda: rows_committed(server, "logs") == accepted), server.log()
    server.wait_health(health_pb2.HealthCheckResponse.SERVING)
    export(server, LOGS_METHOD, payload)
    assert "health NOT_SERVING" in server.log()
    assert server.stop() == 0
    assert rows_committed(server, "logs") == accepted + 1000


def test_garbage_gets_invalid_argument_and_the_server_keeps_serving(
        start_server: Callable[..., ServerProcess]) -> None:
    server = start_server()
    with pytest.raises(grpc.RpcError) as rejected:
        export(server, TRACE_METHOD, b"\x0a\xff\xff\xff\xffnot protobuf")
    assert rejected.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    response = export(server, TRACE_METHOD, next(requests("traces", 20, 1)))
    assert not response.HasField("partial_success")
    assert server.stop() == 0
    assert rows_committed(server, "traces") == 20


def test_gzip_and_requests_above_grpc_default_4_mib_are_accepted(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server()
    big = next(requests("logs", 20000, 1))
    assert len(big) > 4 * 1024 * 1024
    export(server, LOGS_METHOD, big)
    export(server, LOGS_METHOD, next(requests("logs", 100, 1, seed=9)), compression=grpc.Compression.Gzip)
    assert server.stop() == 0
    assert rows_committed(server, "logs") == 20100


def test_requests_over_the_receive_limit_are_refused(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(env={"OTLP2PARQUET_SERVER__MAX_RECEIVE_BYTES": "100000"})
    with pytest.raises(grpc.RpcError) as refused:
        export(server, LOGS_METHOD, next(requests("logs", 1000, 1)))
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert server.stop() == 0


def test_a_request_whose_rows_exceed_the_whole_buffer_is_refused_for_good_and_the_rest_goes_on(
        start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(env={"OTLP2PARQUET_BUFFER__MEMORY_BUDGET_BYTES": str(400_000)})
    with pytest.raises(grpc.RpcError) as refused:
        export(server, LOGS_METHOD, next(requests("logs", 1000, 1)))
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "more than the buffer's whole budget (400000 bytes" in refused.value.details()
    status = status_pb2.Status.FromString(dict(refused.value.trailing_metadata())["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert not status.details, "no RetryInfo: the Collector drops it at once instead of retrying for minutes"
    assert "refused a logs request larger than the buffer" in server.log()
    export(server, LOGS_METHOD, next(requests("logs", 10, 1)))  # smaller requests are still taken
    assert server.stop() == 0


def test_above_its_memory_limit_the_server_refuses_exports_with_retry_info(
        start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(env={"OTLP2PARQUET_SERVER__MEMORY_LIMIT_BYTES": str(32 * 1024 * 1024)},  # below any RSS
                          health=health_pb2.HealthCheckResponse.NOT_SERVING)
    with pytest.raises(grpc.RpcError) as refused:
        export(server, LOGS_METHOD, next(requests("logs", 10, 1)))
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "process memory above its limit" in refused.value.details()
    retry_info(refused.value)
    assert "memory limit: refusing exports" in server.log()
    assert server.stop() == 0


def test_reflection_lists_the_otlp_services(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server()
    services = set(ProtoReflectionDescriptorDatabase(server.channel).get_services())
    assert {"opentelemetry.proto.collector.trace.v1.TraceService",
            "opentelemetry.proto.collector.logs.v1.LogsService",
            "opentelemetry.proto.collector.metrics.v1.MetricsService", "grpc.health.v1.Health"} <= services
    assert server.stop() == 0


def test_plain_parquet_mode_writes_hive_layout_files(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server("--no-iceberg")
    payloads = list(requests("traces", 200, 2, seed=11))
    for payload in payloads:
        export(server, TRACE_METHOD, payload)
    assert server.stop() == 0
    files = sorted(server.base.glob("traces/*/year=*/month=*/day=*/hour=*/*.parquet"))
    assert files and not (server.base / "catalog.db").exists()
    assert sum(pq.read_table(f).num_rows for f in files) == 400


def test_sigterm_with_unwritable_data_exits_non_zero(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server("--no-iceberg")
    export(server, LOGS_METHOD, next(requests("logs", 10, 1)))
    (server.base / "logs").write_text("a file where the logs directory must go")
    assert server.stop() == 1
    assert "exiting with unwritten data" in server.log()
