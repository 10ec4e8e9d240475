"""Several sidecars, one PostgreSQL catalog and one warehouse: every record lands once, conflicts are retried."""

from __future__ import annotations

import collections
import pathlib
import re
import threading
from collections.abc import Callable

import pyarrow.compute as pc
from pyiceberg.catalog.sql import SqlCatalog

from bench.load import METHODS
from bench.workload import requests
from otlp2parquet.writer.iceberg import WRITER_ID
from tests.integration.server import ServerProcess, commit_retries
from tests.services.postgres import Postgres
from tests.waiting import wait_for

SIDECARS = 3
REQUESTS = 30
SPANS = 200
RETRY_LINE = re.compile(r"Commit failed due to a concurrent update, retrying|commit to \S+ failed, retrying")


def _send_all(server: ServerProcess, payloads: list[bytes], failures: list[str]) -> None:
    call = server.channel.unary_unary(METHODS["traces"])
    for payload in payloads:
        try:
            call(payload, timeout=30)
        except Exception as exc:  # recorded, asserted by the test
            failures.append(f"{server.address}: {exc!r}")


def test_three_sidecars_append_to_one_postgres_catalog_exactly_once(
        postgres: Postgres, start_server: Callable[..., ServerProcess], tmp_path: pathlib.Path) -> None:
    url = postgres.create_database()
    warehouse = (tmp_path / "warehouse").as_uri()
    shared = {"OTLP2PARQUET_CATALOG_URI": url, "OTLP2PARQUET_WAREHOUSE": warehouse,
              "OTLP2PARQUET_BUFFER__MAX_AGE_S": "0.05", "OTLP2PARQUET_MAINTENANCE__ENABLED": "false"}
    servers = [start_server(env={**shared, "OTLP2PARQUET_WRITER__WRITER_ID": f"sidecar-{i}"})
               for i in range(SIDECARS)]
    catalog = SqlCatalog("otlp2parquet", uri=url, warehouse=warehouse)

    failures: list[str] = []
    senders = [threading.Thread(target=_send_all, args=(s, list(requests("traces", SPANS, REQUESTS, seed=i)), failures))
               for i, s in enumerate(servers)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    assert failures == []

    expected = SIDECARS * REQUESTS * SPANS

    def committed() -> int:
        snapshot = catalog.load_table("otel.traces").current_snapshot()
        return int(snapshot.summary["total-records"]) if snapshot and snapshot.summary else 0

    assert wait_for(lambda: committed() >= expected, timeout=60), f"{committed()} of {expected} rows committed"
    retries = [sum(commit_retries(s).values()) for s in servers]
    for server in servers:
        assert server.stop() == 0

    table = catalog.load_table("otel.traces")
    rows = table.scan(selected_fields=("TraceId", "SpanId")).to_arrow()
    keys = pc.binary_join_element_wise(rows["TraceId"], rows["SpanId"], "/")
    assert rows.num_rows == expected
    assert len(pc.unique(keys)) == expected, "a span landed twice"

    # Each sidecar's commits carry its writer id: per writer, the rows it was sent.
    added = collections.Counter()
    for snapshot in table.snapshots():
        summary = snapshot.summary
        assert summary is not None and summary.get(WRITER_ID, "").startswith("sidecar-")
        added[summary[WRITER_ID]] += int(summary["added-records"])
    assert added == {f"sidecar-{i}": REQUESTS * SPANS for i in range(SIDECARS)}

    # Frequent small flushes from three writers collide; every retry is counted, and the count matches the log.
    logged = [len(RETRY_LINE.findall(s.log())) for s in servers]
    assert sum(retries) > 0, "no commit conflict happened: the test no longer exercises the retry path"
    assert retries == logged, (retries, logged)
