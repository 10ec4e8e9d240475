"""S3 on loopback: moto's server mode, in the test process, reachable by sidecar subprocesses."""

from __future__ import annotations

import logging
import uuid

import boto3
import duckdb
import duckdb_extension_httpfs
from moto.server import ThreadedMotoServer

from tests.duck import extension
from tests.integration.server import free_port

KEY, SECRET, REGION = "testing", "testing", "us-east-1"


class S3:
    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self.client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=KEY,
                                   aws_secret_access_key=SECRET, region_name=REGION)

    def create_bucket(self) -> str:
        name = f"otel-{uuid.uuid4().hex[:10]}"
        self.client.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def sidecar_env(self) -> dict[str, str]:
        """What a user sets for an S3-compatible store (MinIO, R2): endpoint, region, path style, static keys."""
        return {"OTLP2PARQUET_ICEBERG__S3_ENDPOINT": self.endpoint, "OTLP2PARQUET_ICEBERG__S3_REGION": REGION,
                "OTLP2PARQUET_ICEBERG__S3_PATH_STYLE": "true", "OTLP2PARQUET_S3_ACCESS_KEY_ID": KEY,
                "OTLP2PARQUET_S3_SECRET_ACCESS_KEY": SECRET}

    def attach(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        """Let DuckDB read s3:// from this server."""
        con.execute(f"LOAD '{extension(duckdb_extension_httpfs, 'httpfs')}'")
        con.execute(f"CREATE SECRET (TYPE S3, KEY_ID '{KEY}', SECRET '{SECRET}', REGION '{REGION}', "
                    f"ENDPOINT '127.0.0.1:{self.port}', URL_STYLE 'path', USE_SSL false)")
        return con

    def stop(self) -> None:
        self._server.stop()
