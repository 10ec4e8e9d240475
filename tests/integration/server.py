"""Run `otlp2parquet serve` as a real subprocess for end-to-end tests."""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

SERVING = health_pb2.HealthCheckResponse.SERVING


def wait_serving(address: str, proc: subprocess.Popen, log_path: pathlib.Path, status: int = SERVING,
                 timeout: float = 60) -> None:
    """Poll gRPC health until `status`; fail with the server's log if it exits or never gets there."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status == status:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"health never became {status}:\n{log_path.read_text()}")


def retry_info(error: grpc.RpcError) -> error_details_pb2.RetryInfo:
    """The RetryInfo an UNAVAILABLE answer carries in its rich status (trailers); fails if there is none."""
    status = status_pb2.Status.FromString(dict(error.trailing_metadata())["grpc-status-details-bin"])
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    return info


def clean_environ(*prefixes: str) -> dict[str, str]:
    """This process's environment without our own variables (and any other `prefixes`): a test sets its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTLP2PARQUET_", *prefixes))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, base: pathlib.Path, *args: str, env: dict[str, str] | None = None,
                 health: int = SERVING) -> None:
        self.base = base
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.metrics_address = f"127.0.0.1:{free_port()}"
        self.log_path = base / "server.log"
        base.mkdir(parents=True, exist_ok=True)
        environ = clean_environ()
        environ["OTLP2PARQUET_METRICS_LISTEN"] = self.metrics_address
        environ.update(env or {})
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "otlp2parquet", "serve", "--listen", self.address, "--base-path", str(base),
             *args], stdout=self._log, stderr=subprocess.STDOUT, env=environ)
        self.channel = grpc.insecure_channel(self.address)
        try:
            self.wait_health(health)
        except BaseException:  # nobody else holds this server yet: do not leave it running
            self.kill()
            raise

    def health(self, service: str = "") -> int:
        stub = health_pb2_grpc.HealthStub(self.channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status

    def wait_health(self, status: int, timeout: float = 30) -> None:
        wait_serving(self.address, self.proc, self.log_path, status, timeout)

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then wait: the exit code of a graceful shutdown."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        finally:
            self.channel.close()
            self._log.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.channel.close()
        self._log.close()

    def catalog(self, **kwargs: Any) -> SqlCatalog:
        return SqlCatalog("otlp2parquet", uri=f"sqlite:///{self.base}/catalog.db",
                          warehouse=(self.base / "warehouse").as_uri(), **kwargs)

    def table(self, name: str) -> Table:
        return self.catalog().load_table(f"otel.{name}")


def get(server: ServerProcess, path: str) -> tuple[int, str]:
    """GET a path of the server's telemetry endpoint: (status, body)."""
    try:
        with urllib.request.urlopen(f"http://{server.metrics_address}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every /metrics sample, keyed by name and sorted labels."""
    _, text = get(server, "/metrics")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def commit_retries(server: ServerProcess) -> dict[str, float]:
    """Commit retries by the error that caused them, summed over tables."""
    found: dict[str, float] = {}
    for (name, labels), count in scrape(server).items():
        if name == "otlp2parquet_iceberg_commit_retries_total":
            error = dict(labels)["error"]
            found[error] = found.get(error, 0.0) + count
    return found
