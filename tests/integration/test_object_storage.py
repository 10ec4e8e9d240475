"""The warehouse and plain Parquet files on S3 (moto's server), read back by DuckDB over httpfs."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from collections.abc import Callable

from bench.load import METHODS
from bench.workload import requests
from otlp2parquet.config import load_settings
from otlp2parquet.writer.catalogs import build_catalog
from tests import duck
from tests.integration.server import ServerProcess, clean_environ
from tests.services.s3 import S3

SPANS, LOGS, REQUESTS = 300, 250, 4


def _send(server: ServerProcess) -> None:
    for signal_name, items in (("traces", SPANS), ("logs", LOGS)):
        call = server.channel.unary_unary(METHODS[signal_name])
        for payload in requests(signal_name, items, REQUESTS, seed=7):
            call(payload, timeout=30)


def test_iceberg_warehouse_on_s3_is_readable_by_duckdb_and_maintained_there(
        s3: S3, start_server: Callable[..., ServerProcess], tmp_path: pathlib.Path) -> None:
    bucket = s3.create_bucket()
    env = {**s3.sidecar_env(), "OTLP2PARQUET_WAREHOUSE": f"s3://{bucket}/warehouse"}
    server = start_server(env=env)
    _send(server)
    assert server.stop() == 0

    keys = s3.keys(bucket, "warehouse/otel/traces/")
    assert any(k.endswith(".parquet") for k in keys) and any(k.endswith(".metadata.json") for k in keys)
    assert not list((server.base / "warehouse").glob("**/*.parquet")), "data went to the local disk"

    settings = load_settings(overrides={"writer": {"base_path": str(server.base)}},
                             environ={**env, "OTLP2PARQUET_BASE_PATH": str(server.base)})
    catalog = build_catalog(settings)
    con = s3.attach(duck.connect())
    for table, expected in (("traces", SPANS * REQUESTS), ("logs", LOGS * REQUESTS)):
        location = catalog.load_table(f"otel.{table}").metadata_location
        assert location.startswith(f"s3://{bucket}/")
        assert con.sql(f"SELECT count(*) FROM iceberg_scan('{location}')").fetchone()[0] == expected

    # Maintenance works on the object store too: an unreferenced object is found and removed.
    orphan = "warehouse/otel/traces/data/orphan-from-a-failed-commit.parquet"
    s3.client.put_object(Bucket=bucket, Key=orphan, Body=b"not referenced by any snapshot")
    cli_env = clean_environ() | env
    done = subprocess.run([sys.executable, "-m", "otlp2parquet", "maintain", "--base-path", str(server.base),
                           "--table", "traces", "--orphans-older-than", "0s"],
                          capture_output=True, text=True, env=cli_env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert orphan not in s3.keys(bucket, "warehouse/otel/traces/")
    location = catalog.load_table("otel.traces").metadata_location
    assert con.sql(f"SELECT count(*) FROM iceberg_scan('{location}')").fetchone()[0] == SPANS * REQUESTS


def test_plain_parquet_files_on_s3_in_the_seed_layout(
        s3: S3, start_server: Callable[..., ServerProcess], tmp_path: pathlib.Path) -> None:
    bucket = s3.create_bucket()
    env = {**s3.sidecar_env(), "OTLP2PARQUET_WAL_DIR": str(tmp_path / "wal")}
    server = start_server("--no-iceberg", "--base-path", f"s3://{bucket}/otel", env=env)
    _send(server)
    assert server.stop() == 0

    keys = s3.keys(bucket, "otel/")
    logs = [k for k in keys if k.startswith("otel/logs/")]
    assert logs and all(k.endswith(".parquet") for k in logs)
    parts = logs[0].split("/")
    assert [p.split("=")[0] for p in parts[3:7]] == ["year", "month", "day", "hour"], logs[0]
    con = s3.attach(duck.connect())
    for signal_name, expected in (("traces", SPANS * REQUESTS), ("logs", LOGS * REQUESTS)):
        glob = f"s3://{bucket}/otel/{signal_name}/**/*.parquet"
        assert con.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()[0] == expected
