"""Self-observability: Prometheus metrics named after the Collector's own, and HTTP health endpoints.

Each Service owns a registry (tests run several in one process). Components receive the `Telemetry` object and
record into it; gauges that mirror live state (buffer, WAL) are read at scrape time through callbacks, so the hot
path only increments counters.

HTTP on `[telemetry] listen` (default 127.0.0.1:9464): `/metrics`, `/healthz` (the process is alive) and
`/ready` (accepting exports), for kubelet probes when the gRPC port binds loopback only.
"""

from __future__ import annotations

import gc
import http.server
import logging
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

__all__ = ["HttpEndpoints", "Metric", "Telemetry", "gauge"]
log = logging.getLogger(__name__)
PREFIX = "otlp2parquet"
SIZE_BUCKETS = (1e3, 1e4, 1e5, 1e6, 4e6, 16e6, 64e6)
SECONDS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
EXPORT_SECONDS_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
GC_SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


class _LiveState(Collector):
    """Gauges computed at scrape time from callbacks (buffer contents, WAL size)."""

    def __init__(self) -> None:
        self.sources: list[Callable[[], Iterable[Metric]]] = []

    def collect(self) -> Iterable[Metric]:
        for source in self.sources:
            yield from source()


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        self.live = _LiveState()
        r.register(self.live)
        self.requests = Counter(f"{PREFIX}_receiver_requests", "Export requests by signal and outcome",
                                ["signal", "outcome", "grpc_code"], registry=r)
        self.accepted_items = Counter(f"{PREFIX}_receiver_accepted_items", "Items accepted into the buffer",
                                      ["signal"], registry=r)
        self.refused_requests = Counter(
            f"{PREFIX}_receiver_refused_requests",
            "Requests refused before their items were counted (the sidecar does not decode what it refuses)",
            ["signal", "reason"], registry=r)
        self.refused_items = Counter(f"{PREFIX}_receiver_refused_items", "Decoded items refused as a whole request",
                                     ["signal", "reason"], registry=r)
        self.partial_rejected_items = Counter(
            f"{PREFIX}_receiver_partial_rejected_items",
            "Items rejected through partial_success (invisible in the Collector's own metrics)",
            ["signal", "reason"], registry=r)
        self.request_size = Histogram(f"{PREFIX}_request_size_bytes", "Export request size (after decompression)",
                                      ["signal"], buckets=SIZE_BUCKETS, registry=r)
        self.export_duration = Histogram(
            f"{PREFIX}_export_duration_seconds",
            "Export time in the sidecar, from the request's arrival to its answer (waiting for a conversion slot, "
            "converting, the WAL sync); what the client measures beyond it is transport", ["signal"],
            buckets=EXPORT_SECONDS_BUCKETS, registry=r)
        self.flushes = Counter(f"{PREFIX}_flushes", "Flushes by table, trigger and outcome",
                               ["table", "reason", "outcome"], registry=r)
        self.flush_duration = Histogram(f"{PREFIX}_flush_duration_seconds", "Flush time: write files and commit",
                                        ["table"], buckets=SECONDS_BUCKETS, registry=r)
        self.rows_written = Counter(f"{PREFIX}_sink_written_rows", "Rows written and committed", ["table"],
                                    registry=r)
        self.files_written = Counter(f"{PREFIX}_sink_files", "Data files written", ["table"], registry=r)
        self.file_bytes_written = Counter(f"{PREFIX}_sink_file_bytes", "Bytes of data files written", ["table"],
                                          registry=r)
        self.commits = Counter(f"{PREFIX}_iceberg_commits", "Iceberg commits by outcome", ["table", "outcome"],
                               registry=r)
        self.commit_retries = Counter(f"{PREFIX}_iceberg_commit_retries",
                                      "Commit attempts retried, by the error that caused the retry",
                                      ["table", "error"], registry=r)
        self.wal_replayed_records = Counter(f"{PREFIX}_wal_replayed_records", "WAL records replayed at start",
                                            registry=r)
        self.wal_replayed_rows = Counter(f"{PREFIX}_wal_replayed_rows", "Rows replayed from the WAL at start",
                                         registry=r)
        self.ready = Gauge(f"{PREFIX}_ready", "1 when exports are accepted", registry=r)
        self.gc_pauses = Histogram(f"{PREFIX}_gc_pause_seconds",
                                   "Python garbage collections by generation; every thread waits for them",
                                   ["generation"], buckets=GC_SECONDS_BUCKETS, registry=r)
        self.gc_frozen_objects = Gauge(f"{PREFIX}_gc_frozen_objects",
                                       "Start-up objects that full collections no longer walk", registry=r)

    def add_live(self, source: Callable[[], Iterable[Metric]]) -> None:
        self.live.sources.append(source)

    def scrape(self) -> bytes:
        return generate_latest(self.registry)

    def watch_collections(self) -> Callable[[], None]:
        """Time every garbage collection into `gc_pauses` until the returned function is called."""
        started = 0.0

        def observe(phase: str, info: dict[str, int]) -> None:
            nonlocal started
            if phase == "start":
                started = time.perf_counter()
            else:
                self.gc_pauses.labels(str(info["generation"])).observe(time.perf_counter() - started)

        gc.callbacks.append(observe)
        return lambda: gc.callbacks.remove(observe)


def gauge(name: str, doc: str, labels: list[str], values: Iterable[tuple[list[str], float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)
    for label_values, value in values:
        family.add_metric(label_values, value)
    return family


class HttpEndpoints:
    """/metrics, /healthz and /ready on a small threaded HTTP server."""

    def __init__(self, listen: str, telemetry: Telemetry, ready: Callable[[], bool]) -> None:
        host, port = listen.rsplit(":", 1)
        endpoints = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, telemetry.scrape(), "text/plain; version=0.0.4; charset=utf-8")
                elif path == "/healthz":
                    self._send(200, b"ok\n")
                elif path == "/ready":
                    ok = endpoints.ready()
                    self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
                else:
                    self._send(404, b"not found\n")

            def _send(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.ready = ready
        self.server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="telemetry-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
