"""The sidecar through pyiceberg's real REST client, against the in-repo REST catalog (tests/services)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator

import pyarrow.compute as pc
import pytest
from botocore.credentials import Credentials
from pyiceberg.catalog.sql import SqlCatalog

from bench.load import METHODS
from bench.workload import requests
from otlp2parquet.writer.iceberg import FLUSH_ID
from tests.integration.server import ServerProcess, clean_environ, commit_retries
from tests.services.rest_catalog import RestCatalogServer, sigv4_valid
from tests.waiting import wait_for

TOKEN = "rest-secret-7f3a"
SPANS, REQUESTS = 250, 8
QUIET = {"OTLP2PARQUET_MAINTENANCE__ENABLED": "false", "OTLP2PARQUET_BUFFER__MAX_AGE_S": "0.2"}


@pytest.fixture
def backing(tmp_path: pathlib.Path) -> SqlCatalog:
    (tmp_path / "lake").mkdir()
    return SqlCatalog("lake", uri=f"sqlite:///{tmp_path}/lake/catalog.db", warehouse=(tmp_path / "lake").as_uri())


@pytest.fixture
def rest(backing: SqlCatalog) -> Iterator[RestCatalogServer]:
    server = RestCatalogServer(backing, token=TOKEN)
    yield server
    server.stop()


def _send_traces(server: ServerProcess) -> None:
    call = server.channel.unary_unary(METHODS["traces"])
    for payload in requests("traces", SPANS, REQUESTS, seed=3):
        call(payload, timeout=30)


def test_token_auth_conflicts_and_a_lost_commit_response(
        rest: RestCatalogServer, backing: SqlCatalog, start_server: Callable[..., ServerProcess]) -> None:
    # The first commits meet two 409s (pyiceberg retries them itself), then one applied commit whose response
    # is lost (a 500: pyiceberg gives up, our retry finds the flush id already in the table).
    rest.inject("conflict", "conflict", "lost")
    server = start_server(env={**QUIET, "OTLP2PARQUET_CATALOG_URI": rest.uri, "OTLP2PARQUET_WAREHOUSE": "otel-lake",
                               "OTLP2PARQUET_REST_TOKEN": TOKEN})
    _send_traces(server)

    def committed() -> int:
        snapshot = backing.load_table("otel.traces").current_snapshot() if backing.table_exists("otel.traces") else None
        return int(snapshot.summary["total-records"]) if snapshot and snapshot.summary else 0

    assert wait_for(lambda: committed() == SPANS * REQUESTS and sum(commit_retries(server).values()) >= 3, timeout=60)
    retries = commit_retries(server)
    assert server.stop() == 0

    table = backing.load_table("otel.traces")
    rows = table.scan(selected_fields=("TraceId", "SpanId")).to_arrow()
    keys = pc.binary_join_element_wise(rows["TraceId"], rows["SpanId"], "/")
    assert rows.num_rows == len(pc.unique(keys)) == SPANS * REQUESTS
    flush_ids = [s.summary.get(FLUSH_ID) for s in table.snapshots() if s.summary is not None]
    assert len(flush_ids) == len(set(flush_ids)) == rest.commits["traces"], "a flush was appended twice"
    assert not rest.faults, "every injected fault was met"
    assert retries == {"conflict": 2.0, "state_unknown": 1.0}

    assert rest.requests[0].path == "/v1/config" and rest.requests[0].query == "warehouse=otel-lake"
    assert all(r.headers.get("Authorization") == f"Bearer {TOKEN}" for r in rest.requests)
    assert TOKEN not in server.log()


def test_a_wrong_token_stops_start_up_without_printing_it(rest: RestCatalogServer, tmp_path: pathlib.Path) -> None:
    env = {"OTLP2PARQUET_CATALOG_URI": rest.uri, "OTLP2PARQUET_REST_TOKEN": "wrong-token-91c2"}
    done = subprocess.run([sys.executable, "-m", "otlp2parquet", "serve", "--base-path", str(tmp_path / "s"),
                           "--listen", "127.0.0.1:0"], env={**clean_environ("AWS_"), **env, **QUIET},
                          capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 1
    assert f"cannot open the rest catalog at {rest.uri}: UnauthorizedError" in output
    assert "missing or wrong bearer token" in output and "Traceback" not in output
    assert "wrong-token-91c2" not in output


def test_s3_tables_requests_carry_a_valid_sigv4_signature_for_s3tables(
        backing: SqlCatalog, start_server: Callable[..., ServerProcess]) -> None:
    credentials = Credentials("AKIDOTLP2PARQUETTEST", "s3tables-test-secret")
    signed = RestCatalogServer(backing, sigv4=(credentials, "s3tables", "us-east-2"))
    try:
        arn = "arn:aws:s3tables:us-east-2:111122223333:bucket/otel"
        # The endpoint derived from the ARN is replaced by the local server; everything else is as in production.
        server = start_server(env={
            **clean_environ("AWS_"), **QUIET, "OTLP2PARQUET_S3_TABLES_ARN": arn,
            "OTLP2PARQUET_ICEBERG__CATALOG_PROPERTIES": json.dumps({"uri": signed.uri}),
            "AWS_ACCESS_KEY_ID": credentials.access_key, "AWS_SECRET_ACCESS_KEY": credentials.secret_key})
        _send_traces(server)
        assert server.stop() == 0
    finally:
        signed.stop()
    assert backing.load_table("otel.traces").scan().count() == SPANS * REQUESTS
    commits = [r for r in signed.requests if r.method == "POST" and r.path.endswith("/tables/traces")]
    assert commits and urllib.parse.parse_qs(signed.requests[0].query) == {"warehouse": [arn]}
    host = signed.uri.removeprefix("http://")
    for request in signed.requests:
        assert "/us-east-2/s3tables/aws4_request" in request.headers["Authorization"]
        assert sigv4_valid(request, host, credentials, "s3tables", "us-east-2")
    # The check can fail: a changed body, or another service name, no longer matches.
    tampered = commits[0]
    tampered.body = tampered.body.replace(b"append", b"appenD")
    assert not sigv4_valid(tampered, host, credentials, "s3tables", "us-east-2")
    assert not sigv4_valid(commits[-1], host, credentials, "s3", "us-east-2")
