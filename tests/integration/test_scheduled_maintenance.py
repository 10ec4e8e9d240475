"""Maintenance inside `serve`: snapshots expire on schedule while the sidecar keeps committing."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bench.load import METHODS
from bench.workload import requests
from tests.integration.server import ServerProcess

pytestmark = pytest.mark.integration


def test_serve_expires_snapshots_on_its_schedule(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(env={"OTLP2PARQUET_BUFFER__MAX_AGE_S": "0.2", "OTLP2PARQUET_MAINTENANCE__INTERVAL_S": "1",
                               "OTLP2PARQUET_MAINTENANCE__EXPIRE_OLDER_THAN": "0s",
                               "OTLP2PARQUET_MAINTENANCE__KEEP_LAST": "3"})
    call = server.channel.unary_unary(METHODS["logs"])
    for payload in requests("logs", 20, 12, seed=4):
        call(payload, timeout=10)
        time.sleep(0.35)  # one flush, one commit, one snapshot each
    time.sleep(1.5)
    assert server.stop() == 0, server.log()
    table = server.table("logs")
    assert table.scan().to_arrow().num_rows == 240
    commits = server.log().count('"message": "flushed otel.logs"')
    assert commits >= 8 and len(table.snapshots()) < commits
    assert '"step": "expire-snapshots"' in server.log()
