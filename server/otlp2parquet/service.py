"""Wiring: build the components from Settings, start them, and stop them in the right order.

Start: read each table's committed WAL watermark, replay from the WAL what no commit covers yet (through the
normal buffer and flush path, bounded by the memory budget), then serve.
Shutdown: health NOT_SERVING and refuse new exports, let in-flight exports finish, flush and commit every
buffer, close the writers and the WAL.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent import futures

import grpc
import pyarrow as pa
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table
from tenacity import Retrying, stop_after_delay, wait_random_exponential

from otlp2parquet.buffer import Buffer
from otlp2parquet.config import Settings
from otlp2parquet.convert import CONVERTERS, enable_native
from otlp2parquet.convert.pool import ConversionPool
from otlp2parquet.cpus import usable_cpus
from otlp2parquet.errors import ConfigError
from otlp2parquet.flush import Flusher
from otlp2parquet.memory import Trimmer, rss_bytes
from otlp2parquet.receiver import SERVICES, Receiver
from otlp2parquet.telemetry import HttpEndpoints, Metric, Telemetry, gauge
from otlp2parquet.wal import WriteAheadLog
from otlp2parquet.writer import WriterFactory, build_writer_factory

log = logging.getLogger(__name__)
# The most convert processes -1 starts. The WAL, buffer and flushes stay in one process, which more workers
# cannot speed up; measured only up to two (bench/RESULTS.md).
AUTO_CONVERT_PROCESSES = 4
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
HEALTH_NAMES = ["", *(svc.service for svc in SERVICES)]


class Service:
    def __init__(self, settings: Settings, writers: WriterFactory | None = None) -> None:
        self.settings = settings
        self.telemetry = Telemetry()
        self.buffer = Buffer(settings.buffer)
        self.wal = WriteAheadLog(settings.wal_dir(), settings.wal) if settings.wal.enabled else None
        self.flusher = Flusher(self.buffer, writers or build_writer_factory(settings, self.telemetry),
                               on_committed=self._trim, telemetry=self.telemetry,
                               commit_interval_s=settings.commit_interval_s(),
                               parallel_flushes=settings.buffer.parallel_flushes)
        enable_native(settings.server.native_decode)
        processes = settings.server.convert_processes
        if processes < 0:  # one CPU: a worker would only add the IPC; many: the server process is the limit
            cpus = usable_cpus()
            processes = min(cpus, AUTO_CONVERT_PROCESSES) if cpus > 1 else 0
        self.pool = ConversionPool(processes, settings.server.native_decode,
                                   settings.buffer.memory_budget_bytes) if processes else None
        # With workers, two requests per worker in flight keep each one busy while the other result travels.
        conversions = max(settings.server.conversions, 2 * processes)
        self.receiver = Receiver(self.buffer, self.wal, self.telemetry, conversions,
                                 self.pool.convert if self.pool else None, settings.server.group_bytes)
        self.telemetry.add_live(self._live_metrics)
        self.http = None
        if settings.telemetry.enabled:
            try:
                self.http = HttpEndpoints(settings.telemetry.listen, self.telemetry, self.ready)
            except OSError as exc:
                raise ConfigError(f"telemetry.listen: cannot listen on {settings.telemetry.listen}: {exc}") from exc
        self._recovered = False
        self.health = health.HealthServicer()
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.server.workers, thread_name_prefix="grpc"),
            handlers=self.receiver.generic_handlers(),
            options=[
                ("grpc.max_receive_message_length", settings.server.max_receive_bytes),
                # Collector exporters with keepalive on ping every 10 s or more; allow that without GOAWAY.
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
            ],
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        if settings.server.reflection:
            names = [svc.service for svc in SERVICES]
            names += [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
            reflection.enable_server_reflection(names, self.server)
        self.port = 0
        self._serving = True
        self._stop_health = threading.Event()
        self._stop_maintenance = threading.Event()
        self._maintenance = None
        if settings.iceberg.enabled and settings.maintenance.enabled:
            self._maintenance = threading.Thread(target=self._maintain_forever, name="maintenance", daemon=True)
        self._health_thread = threading.Thread(target=self._watch_health, name="health", daemon=True)

    def ready(self) -> bool:
        """Accepting exports: recovered, not shutting down, buffer below its high-water mark."""
        return self._recovered and not self.receiver.shutting_down and self.buffer.accepting()

    def _live_metrics(self) -> Iterable[Metric]:
        stats, ages = self.buffer.stats(), self.buffer.ages()
        yield gauge("buffer_items", "Rows buffered per table", ["table"], ([[t], r] for t, (r, _) in stats.items()))
        yield gauge("buffer_table_bytes", "Arrow bytes buffered per table", ["table"],
                    ([[t], b] for t, (_, b) in stats.items()))
        yield gauge("buffer_bytes", "Arrow bytes held, including flushes being written", [],
                    [([], self.buffer.used_bytes)])
        yield gauge("arrow_allocated_bytes", "Bytes allocated by Arrow in this process: buffered, being flushed "
                    "and being converted", [], [([], pa.total_allocated_bytes())])
        yield gauge("arrow_peak_bytes", "The most Arrow has had allocated at once since start", [],
                    [([], pa.default_memory_pool().max_memory())])
        yield gauge("buffer_capacity_bytes", "The memory budget", [],
                    [([], self.settings.buffer.memory_budget_bytes)])
        yield gauge("conversion_queue_requests", "Admitted requests waiting for a conversion slot", [],
                    [([], self.receiver.queued)])
        yield gauge("oldest_unflushed_age_seconds", "Age of the oldest buffered row per table", ["table"],
                    ([[t], a] for t, a in ages.items()))
        if self.wal is not None:
            yield gauge("wal_bytes", "Bytes in WAL segment files", [], [([], self.wal.size_bytes())])
            yield gauge("wal_last_lsn", "Newest WAL position written", [], [([], self.wal.last_lsn)])
        self.telemetry.ready.set(1 if self.ready() else 0)

    def _set_health(self, serving: bool) -> None:
        for name in HEALTH_NAMES:
            self.health.set(name, SERVING if serving else NOT_SERVING)

    def _watch_health(self) -> None:
        """NOT_SERVING above the buffer's high-water mark or the memory limit, SERVING again below them; and, on
        the same beat, hand freed memory back to the OS."""
        limit = self.settings.server.memory_limit_bytes
        trimmer = Trimmer(limit_bytes=limit)
        held = False
        while not self._stop_health.is_set():
            with self.buffer.changed:
                self.buffer.changed.wait(0.5)
            rss = trimmer.maybe_trim()
            if (rss is not None) != held:
                held = rss is not None
                self.buffer.hold(f"process memory above its limit ({rss} of {limit} bytes resident); retry later"
                                 if held else None)
                log.warning("memory limit: %s exports", "refusing" if held else "accepting again",
                            extra={"rss_bytes": rss or rss_bytes(), "limit_bytes": limit})
            serving = self.buffer.accepting() and not self.receiver.shutting_down
            if serving != self._serving:
                self._serving = serving
                self._set_health(serving)
                log.info("health %s", "SERVING" if serving else "NOT_SERVING",
                         extra={"buffer_bytes": self.buffer.used_bytes})

    def _maintain_forever(self) -> None:
        """Run table maintenance every interval until shutdown; a failed run is logged and tried next time."""
        from otlp2parquet.maintenance import Plan, maintain, parse_duration
        from otlp2parquet.schemas import TABLES
        from otlp2parquet.writer.catalogs import build_catalog

        m = self.settings.maintenance
        def duration(text: str) -> dt.timedelta | None:
            return None if text == "off" else parse_duration(text)

        plan = Plan(duration(m.expire_older_than), m.keep_last, duration(m.orphans_older_than),
                    {t: parse_duration(age) for t, age in m.retention.items()}, False, duration(m.compact_after),
                    m.target_file_bytes)
        prefix, namespace = self.settings.writer.table_prefix, self.settings.iceberg.namespace

        def loader(catalog: Catalog) -> Callable[[str], Table | None]:
            def load(name: str) -> Table | None:
                try:
                    return catalog.load_table((namespace, prefix + name))
                except NoSuchTableError:
                    return None
            return load

        while not self._stop_maintenance.wait(m.interval_s):
            try:
                # A catalog of its own, so its Table objects are never the flushers'.
                maintain(loader(build_catalog(self.settings)), plan, list(TABLES), self.settings)
            except Exception:
                log.exception("table maintenance failed; trying again at the next interval")

    def _trim(self) -> None:
        if self.wal is not None:
            self.wal.trim(self.buffer.committed_through())

    def _committed(self) -> dict[str, int]:
        """Each table's committed watermark for this writer id, waiting for the catalog if it is down."""
        retrying = Retrying(stop=stop_after_delay(self.settings.iceberg.commit_max_elapsed_s),
                            wait=wait_random_exponential(multiplier=0.5, max=10), reraise=True,
                            before_sleep=lambda state: log.warning("catalog not reachable yet; retrying", extra={
                                "error": repr(state.outcome.exception() if state.outcome else None)}))
        return retrying(lambda: {t: self.flusher.writer(t).committed_lsn() for t in self.flusher.tables})

    def _replay(self, committed: dict[str, int]) -> None:
        assert self.wal is not None
        started, records, rows, last_report = time.monotonic(), 0, 0, time.monotonic()
        for record in self.wal.replay(after=min(committed.values())):
            result = CONVERTERS[record.signal](record.payload)
            batches = {t: b for t, b in result.batches.items() if record.lsn > committed[t]}
            if batches:
                self.buffer.offer(batches, lsn=record.lsn, block=True)
            replayed = sum(b.num_rows for b in batches.values())
            records += 1
            rows += replayed
            self.telemetry.wal_replayed_records.inc()
            self.telemetry.wal_replayed_rows.inc(replayed)
            if time.monotonic() - last_report >= 5:
                last_report = time.monotonic()
                log.info("replaying the WAL", extra={"records": records, "rows": rows, "lsn": record.lsn})
        log.info("WAL replay done", extra={"records": records, "rows": rows,
                                           "duration_s": round(time.monotonic() - started, 3)})

    def recover(self) -> None:
        """Bring the tables up to date with the WAL before serving; LSNs continue above anything used before."""
        last = self.wal.recover() if self.wal is not None else 0
        committed = self._committed()
        # A flush's watermark is the buffer's newest LSN. During replay that must be the last record replayed,
        # not the WAL's end: a flush committed mid-replay would otherwise claim the records not yet replayed, and
        # a crash before they were committed would skip them at the next start (an acked request lost).
        self.buffer.last_lsn = min(committed.values()) if self.wal is not None else max(committed.values())
        log.info("recovering", extra={"wal_last_lsn": last, "committed_lsn": committed})
        self.flusher.start()
        if self.wal is not None:
            self._replay(committed)
            self.buffer.advance(max(last, *committed.values()))
            self.wal.open(self.buffer.last_lsn + 1)

    def start(self) -> int:
        if crowded := self.settings.buffer.crowded_flush():
            log.warning(crowded)
        self.port = self.server.add_insecure_port(self.settings.server.listen)
        if self.port == 0:
            raise ConfigError(f"server.listen: cannot listen on {self.settings.server.listen}")
        if self.http is not None:
            self.http.start()  # /healthz answers during recovery; /ready only after it
        self.recover()
        if self.pool is not None:
            log.info("conversion workers started", extra={"pids": self.pool.start()})
        self._recovered = True
        self._set_health(True)
        self.server.start()
        if self._maintenance is not None:
            self._maintenance.start()
        self._health_thread.start()
        log.info("serving OTLP/gRPC", extra={"listen": self.settings.server.listen, "port": self.port,
                                             "iceberg": self.settings.iceberg.enabled,
                                             "metrics_port": self.http.port if self.http else None})
        return self.port

    def stop(self) -> bool:
        """Drain and stop. True when every flush was written (and committed, in Iceberg mode)."""
        log.info("shutting down: refusing new exports, draining")
        self._stop_maintenance.set()
        self.receiver.shutting_down = True
        self._set_health(False)
        self.server.stop(self.settings.server.grace_s).wait()
        if self.pool is not None:
            self.pool.close()
        ok = self.flusher.close()
        if self.wal is not None:
            self.wal.close()
            self._trim()
        self._stop_health.set()
        if self.http is not None:
            self.http.stop()
        stats = {t: (s.flushes, s.rows, s.failures) for t, s in self.flusher.stats.items() if s.flushes or s.failures}
        log.info("stopped", extra={"flushes_rows_failures": stats, "clean": ok})
        return ok
