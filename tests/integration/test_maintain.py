"""`otlp2parquet maintain` run repeatedly while a sidecar process keeps appending: no row lost."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from bench.load import METHODS
from bench.workload import requests
from otlp2parquet.convert import convert_traces
from tests.integration.server import ServerProcess

pytestmark = pytest.mark.integration


def test_maintain_while_a_sidecar_appends_loses_nothing(start_server: Callable[..., ServerProcess],
                                                        tmp_path: pathlib.Path) -> None:
    server = start_server(env={"OTLP2PARQUET_BUFFER__MAX_AGE_S": "0.2"})
    call = server.channel.unary_unary(METHODS["traces"])
    sent: list[str] = []
    stop = threading.Event()

    def send() -> None:
        for payload in requests("traces", 50, 10_000, seed=9):
            if stop.is_set():
                return
            call(payload, timeout=10)
            batch = convert_traces(payload).batches["traces"]
            sent.extend(batch.column("SpanId").to_pylist())

    sender = threading.Thread(target=send)
    sender.start()
    runs = 0
    try:
        while runs < 4:
            time.sleep(0.5)
            done = subprocess.run([sys.executable, "-m", "otlp2parquet", "maintain", "--base-path", str(server.base),
                                   "--expire-older-than", "0s", "--keep-last", "2", "--orphans-older-than", "1h",
                                   "--log-format", "text"], capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            runs += 1
    finally:
        stop.set()
        sender.join()
    assert server.stop() == 0, server.log()
    catalog = server.catalog()
    table = catalog.load_table("otel.traces")
    ids = table.scan().to_arrow().column("SpanId").to_pylist()
    assert len(sent) > 500 and sorted(ids) == sorted(sent)
    commits = server.log().count('"message": "flushed otel.traces"')
    assert len(table.snapshots()) < commits, "expiry removed history while the sidecar appended"
