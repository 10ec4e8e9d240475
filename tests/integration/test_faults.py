"""Fault tests with real processes and files: kill -9, a locked catalog, a full spool disk, shutdown under load.

The invariant everywhere: every acknowledged span is in the table exactly once.
"""

from __future__ import annotations

import pathlib
import random
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from bench.load import METHODS
from bench.workload import traces_request
from tests.integration.server import ServerProcess
from tests.waiting import wait_for

pytestmark = pytest.mark.integration
TRACE_METHOD = METHODS["traces"]
FAST_FLUSH = {"OTLP2PARQUET_BUFFER__MAX_AGE_S": "0.2", "OTLP2PARQUET_WRITER__WRITER_ID": "fault-test"}


class Sender:
    """Sends 20-span requests with unique span ids; remembers exactly which spans were acknowledged."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.acked: set[str] = set()
        self.refused: list[grpc.StatusCode] = []
        self._lock = threading.Lock()

    def next(self) -> tuple[bytes, list[str]]:
        """A new request and its span ids; safe to call from several sending threads."""
        with self._lock:
            req = traces_request(self.rng, 20)
        ids = [s.span_id.hex() for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
        return req.SerializeToString(), ids

    def send(self, server: ServerProcess, payload: bytes, ids: list[str]) -> bool:
        try:
            call = server.channel.unary_unary(
                TRACE_METHOD, response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString)
            call(payload, timeout=10)
        except grpc.RpcError as exc:
            self.refused.append(exc.code())
            return False
        except ValueError:  # the test closed the channel (the server is gone): not acknowledged
            return False
        with self._lock:
            self.acked.update(ids)
        return True


def span_ids(server: ServerProcess) -> list[str]:
    scan = server.table("traces").scan(selected_fields=("SpanId",))
    return scan.to_arrow().column("SpanId").to_pylist()


def assert_exactly_once(server: ServerProcess, acked: set[str]) -> None:
    ids = span_ids(server)
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicated spans"
    missing = acked - set(ids)
    assert not missing, f"{len(missing)} acknowledged spans missing"


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(start_server: Callable[..., ServerProcess],
                                                               tmp_path: pathlib.Path) -> None:
    base = tmp_path / "sidecar"
    sender = Sender(seed=1)
    rng = random.Random(2)
    replayed_rows = []
    for _trial in range(10):
        server = start_server(base=base, env=FAST_FLUSH)
        replayed_rows.append(_replayed(server.log()))
        deadline = time.monotonic() + rng.uniform(0.3, 1.5)
        stop = threading.Event()

        def pump(srv: ServerProcess = server, s: threading.Event = stop) -> None:
            while not s.is_set() and sender.send(srv, *sender.next()):
                pass

        threads = [threading.Thread(target=pump) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(max(0.0, deadline - time.monotonic()))
        server.kill()  # SIGKILL: no flush, no goodbye
        stop.set()
        for t in threads:
            t.join()
    final = start_server(base=base, env=FAST_FLUSH)
    replayed_rows.append(_replayed(final.log()))
    assert final.stop() == 0, final.log()
    assert len(sender.acked) > 1000
    assert_exactly_once(final, sender.acked)
    assert sum(1 for rows in replayed_rows if rows > 0) >= 3, \
        f"kills should often leave acknowledged rows that only the WAL has: replayed {replayed_rows}"
    data_files = list((base / "warehouse").rglob("*.parquet"))
    referenced = final.table("traces").inspect.files().num_rows
    print(f"\nkill -9: {len(sender.acked)} spans acked, rows replayed per start {replayed_rows}, "
          f"{len(data_files) - referenced} data files orphaned by kills during a commit")


def _replayed(log: str) -> int:
    for line in log.splitlines():
        if '"WAL replay done"' in line:
            return int(line.split('"rows": ')[1].split(",")[0])
    raise AssertionError(f"no replay line in:\n{log}")


def test_a_locked_catalog_means_back_pressure_then_recovery(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(env={**FAST_FLUSH, "OTLP2PARQUET_BUFFER__MEMORY_BUDGET_BYTES": "2000000",
                               "OTLP2PARQUET_BUFFER__RETRY_AFTER_S": "0.2"})
    sender = Sender(seed=3)
    for _ in range(5):
        assert sender.send(server, *sender.next())
    lock = sqlite3.connect(server.base / "catalog.db", timeout=30)
    lock.execute("BEGIN EXCLUSIVE")  # nobody else can read or write the catalog now
    until = time.monotonic() + 10
    while time.monotonic() < until:
        sender.send(server, *sender.next())
    lock.rollback()
    lock.close()
    assert grpc.StatusCode.UNAVAILABLE in sender.refused, "a full buffer must push back on the client"
    assert set(sender.refused) == {grpc.StatusCode.UNAVAILABLE}
    for _ in range(5):  # and it accepts again once the catalog is back
        assert wait_for(lambda: sender.send(server, *sender.next()), timeout=60, interval=0.2)
    assert server.stop() == 0, server.log()
    assert "database is locked" in server.log()
    assert_exactly_once(server, sender.acked)


@pytest.fixture
def small_disk(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """A 4 MiB tmpfs: a real filesystem that fills up (needs root, as CI and the dev machines have)."""
    mount = tmp_path / "spool"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    assert done.returncode == 0, f"cannot mount a tmpfs for the disk-full test: {done.stderr}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_spool_disk_answers_unavailable_and_recovers(start_server: Callable[..., ServerProcess],
                                                            small_disk: pathlib.Path) -> None:
    env = {**FAST_FLUSH, "OTLP2PARQUET_WAL_DIR": str(small_disk / "wal"),
           "OTLP2PARQUET_WAL__SEGMENT_BYTES": "200000", "OTLP2PARQUET_BUFFER__MAX_AGE_S": "3600"}
    server = start_server(env=env)
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (small_disk.stat().st_size or 0))
    with ballast.open("ab") as f:  # fill the disk to the last byte
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    sender = Sender(seed=4)
    for _ in range(20):
        sender.send(server, *sender.next())
    assert grpc.StatusCode.UNAVAILABLE in sender.refused
    assert "the WAL cannot be written" in server.log()
    ballast.unlink()  # space returns
    assert wait_for(lambda: sender.send(server, *sender.next()), timeout=60, interval=0.2)
    server.kill()  # and what was acknowledged is durable: a restart replays it
    again = start_server(base=server.base, env=env)
    assert again.stop() == 0, again.log()
    assert_exactly_once(again, sender.acked)
    assert len(sender.acked) >= 20


def test_graceful_shutdown_under_load_commits_every_acknowledged_span(
        start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(env={"OTLP2PARQUET_BUFFER__MAX_AGE_S": "3600"})
    sender = Sender(seed=5)
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            sender.send(server, *sender.next())

    threads = [threading.Thread(target=pump) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    code = server.stop()
    stop.set()
    for t in threads:
        t.join()
    assert code == 0, server.log()
    assert len(sender.acked) > 200
    assert_exactly_once(server, sender.acked)
    assert set(span_ids(server)) == sender.acked, "nothing unacknowledged was committed either"
