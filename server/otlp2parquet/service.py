"""Wiring: build the components from Settings, start them, and stop them in the right order.

Shutdown order: health NOT_SERVING and refuse new exports, let in-flight exports finish, flush and commit
every buffer, close the writers.
"""

from __future__ import annotations

import logging
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from otlp2parquet.buffer import Buffer
from otlp2parquet.config import Settings
from otlp2parquet.errors import ConfigError
from otlp2parquet.flush import Flusher
from otlp2parquet.receiver import SERVICES, Receiver
from otlp2parquet.writer import WriterFactory, build_writer_factory

log = logging.getLogger(__name__)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
HEALTH_NAMES = ["", *(svc.service for svc in SERVICES)]


class Service:
    def __init__(self, settings: Settings, writers: WriterFactory | None = None) -> None:
        self.settings = settings
        self.buffer = Buffer(settings.buffer)
        self.flusher = Flusher(self.buffer, writers or build_writer_factory(settings))
        self.receiver = Receiver(self.buffer)
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
        self._health_thread = threading.Thread(target=self._watch_health, name="health", daemon=True)

    def _set_health(self, serving: bool) -> None:
        for name in HEALTH_NAMES:
            self.health.set(name, SERVING if serving else NOT_SERVING)

    def _watch_health(self) -> None:
        """NOT_SERVING above the buffer's high-water mark, SERVING again below it."""
        while not self._stop_health.is_set():
            with self.buffer.changed:
                self.buffer.changed.wait(0.5)
            serving = self.buffer.accepting() and not self.receiver.shutting_down
            if serving != self._serving:
                self._serving = serving
                self._set_health(serving)
                log.info("health %s", "SERVING" if serving else "NOT_SERVING",
                         extra={"buffer_bytes": self.buffer.used_bytes})

    def start(self) -> int:
        self.port = self.server.add_insecure_port(self.settings.server.listen)
        if self.port == 0:
            raise ConfigError(f"server.listen: cannot listen on {self.settings.server.listen}")
        self._set_health(True)
        self.flusher.start()
        self.server.start()
        self._health_thread.start()
        log.info("serving OTLP/gRPC", extra={"listen": self.settings.server.listen, "port": self.port,
                                             "iceberg": self.settings.iceberg.enabled})
        return self.port

    def stop(self) -> bool:
        """Drain and stop. True when every flush was written (and committed, in Iceberg mode)."""
        log.info("shutting down: refusing new exports, draining")
        self.receiver.shutting_down = True
        self._set_health(False)
        self.server.stop(self.settings.server.grace_s).wait()
        ok = self.flusher.close()
        self._stop_health.set()
        stats = {t: (s.flushes, s.rows, s.failures) for t, s in self.flusher.stats.items() if s.flushes or s.failures}
        log.info("stopped", extra={"flushes_rows_failures": stats, "clean": ok})
        return ok
