"""A sidecar converting in worker processes: rows land exactly once, bad input is still INVALID_ARGUMENT, a killed
worker costs one retry, and the workers go away with the server."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable

import grpc
import pytest

from bench.workload import requests
from tests.integration.server import ServerProcess
from tests.integration.test_server import TRACE_METHOD, export, rows_committed
from tests.waiting import alive, wait_for

pytestmark = pytest.mark.integration


def _worker_pids(server: ServerProcess) -> list[int]:
    for line in server.log().splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        if record.get("message") == "conversion workers started":
            return record["pids"]
    raise AssertionError(f"no worker pids in the log:\n{server.log()}")


def test_workers_convert_and_a_lost_worker_costs_one_retry(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(env={"OTLP2PARQUET_SERVER__CONVERT_PROCESSES": "2"})
    workers = _worker_pids(server)
    assert len(workers) == 2 and all(alive(pid) for pid in workers)
    acked = 0
    for payload in requests("traces", 500, 10, seed=5):
        export(server, TRACE_METHOD, payload)
        acked += 500
    with pytest.raises(grpc.RpcError) as bad:
        export(server, TRACE_METHOD, b"\x0a\xff\xff\xff garbage")
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT

    os.kill(workers[0], signal.SIGKILL)
    unavailable = 0
    for payload in requests("traces", 500, 4, seed=6):
        while True:  # what the Collector does with UNAVAILABLE
            try:
                export(server, TRACE_METHOD, payload)
                acked += 500
                break
            except grpc.RpcError as exc:
                assert exc.code() is grpc.StatusCode.UNAVAILABLE, exc
                assert "conversion worker exited" in exc.details()
                unavailable += 1
    assert unavailable <= 2  # each request in flight when the pool broke, nothing after it was rebuilt
    assert "starting a new pool" in server.log()

    assert server.stop() == 0
    assert rows_committed(server, "traces") == acked
    assert not any(alive(pid) for pid in workers)


def test_workers_do_not_outlive_a_killed_server(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(env={"OTLP2PARQUET_SERVER__CONVERT_PROCESSES": "2"})
    workers = _worker_pids(server)
    server.kill()
    assert wait_for(lambda: not any(alive(pid) for pid in workers), timeout=10)
