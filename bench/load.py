"""End-to-end load: start the sidecar with a configuration, send pre-serialized requests, measure what commits.

    python -m bench.load --signal traces --items 1000 --seconds 10 --set wal.fsync=always [--write-results]

Load comes from separate processes (so the sender's CPU is not the sidecar's), each with a few threads sending
as fast as acknowledgements allow. Reported: accepted items/s; committed rows (read back from the table) per
second of the run until the final commit; items per CPU-second of the sidecar (user+system from /proc);
export latency p50/p99; every status code seen.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass

import grpc

from bench.results import append
from bench.workload import requests

METHODS = {"traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
           "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
           "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"}
TABLES = {"traces": ["traces"], "logs": ["logs"],
          "metrics": ["metrics_gauge", "metrics_sum", "metrics_histogram", "metrics_exponential_histogram",
                      "metrics_summary"]}


@dataclass
class Outcome:
    codes: Counter
    latencies: list[float]
    accepted_items: int


def _sender(address: str, signal_name: str, payloads: list[bytes], items: int, seconds: float, threads: int,
            queue: mp.Queue) -> None:
    """One load process: `threads` threads over one channel, until `seconds` have passed."""
    channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 128 * 1024 * 1024)])
    call = channel.unary_unary(METHODS[signal_name])
    deadline = time.monotonic() + seconds
    lock = threading.Lock()
    codes: Counter = Counter()
    latencies: list[float] = []
    accepted = 0

    def run(offset: int) -> None:
        nonlocal accepted
        i = offset
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                call(payloads[i % len(payloads)], timeout=30)
                code = "OK"
            except grpc.RpcError as exc:
                code = exc.code().name
            elapsed = time.perf_counter() - started
            with lock:
                codes[code] += 1
                if code == "OK":
                    latencies.append(elapsed)
                    accepted += items
                elif code == "UNAVAILABLE":
                    time.sleep(0.05)
            i += threads

    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    channel.close()
    queue.put(Outcome(codes, latencies, accepted))


def _cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _committed_rows(base: pathlib.Path, signal_name: str) -> int:
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("otlp2parquet", uri=f"sqlite:///{base}/catalog.db")
    total = 0
    for table in TABLES[signal_name]:
        snapshot = catalog.load_table(f"otel.{table}").current_snapshot()
        total += int(snapshot.summary.get("total-records", 0)) if snapshot else 0
    return total


def run(signal_name: str, items: int, seconds: float, settings: list[str], processes: int,
        threads: int) -> dict[str, object]:
    base = pathlib.Path(tempfile.mkdtemp(prefix="otlp2parquet-bench-"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTLP2PARQUET_")}
    for item in settings:
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        env[f"OTLP2PARQUET_{section.upper()}__{name.upper()}"] = value
    env["OTLP2PARQUET_METRICS_LISTEN"] = f"127.0.0.1:{_free_port()}"
    log = (base / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "otlp2parquet", "serve", "--listen", f"127.0.0.1:{port}",
                               "--base-path", str(base)], env=env, stdout=log, stderr=subprocess.STDOUT)
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        for _ in range(300):
            try:
                if health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    break
            except grpc.RpcError:
                time.sleep(0.1)
    payloads = list(requests(signal_name, items, 16, seed=7))
    cpu_before = _cpu_seconds(server.pid)
    queue: mp.Queue = mp.Queue()
    started = time.monotonic()
    senders = [mp.Process(target=_sender, args=(f"127.0.0.1:{port}", signal_name, payloads, items, seconds,
                                                threads, queue)) for _ in range(processes)]
    for p in senders:
        p.start()
    outcomes = [queue.get() for _ in senders]
    for p in senders:
        p.join()
    load_done = time.monotonic()
    cpu_loaded = _cpu_seconds(server.pid)
    server.send_signal(signal.SIGTERM)
    cpu_final = cpu_loaded
    while server.poll() is None:  # sample CPU until exit: the final flush counts too
        try:
            cpu_final = _cpu_seconds(server.pid)
        except (FileNotFoundError, ProcessLookupError, IndexError):
            break
        time.sleep(0.05)
    server.wait()
    committed_at = time.monotonic()
    log.close()
    codes = sum((o.codes for o in outcomes), Counter())
    latencies = sorted(lat for o in outcomes for lat in o.latencies)
    accepted = sum(o.accepted_items for o in outcomes)
    committed = _committed_rows(base, signal_name)
    quantile = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return {
        "settings": " ".join(settings) or "defaults",
        "accepted_per_s": accepted / (load_done - started),
        "committed_rows": committed,
        "accepted_items": accepted,
        "committed_per_s": committed / (committed_at - started),
        "items_per_cpu_s": committed / max(cpu_final - cpu_before, 1e-9),
        "p50_ms": quantile[49] * 1000,
        "p99_ms": quantile[98] * 1000,
        "codes": dict(codes),
        "exit_code": server.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signal", choices=sorted(METHODS), default="traces")
    parser.add_argument("--items", type=int, default=1000, help="items per request")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="threads per load process")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a sidecar setting; repeat --set, or use --compare to run several configurations")
    parser.add_argument("--compare", action="append", default=[], metavar="'SECTION.KEY=V [SECTION.KEY=V...]'",
                        help="one configuration per --compare (space-separated settings), run one after another")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    configurations = [c.split() for c in args.compare] or [args.set]
    header = ("| configuration | accepted items/s | committed rows/s | items per sidecar CPU-s | p50 ms | p99 ms | "
              "committed / acked | status codes |\n|---|---|---|---|---|---|---|---|")
    lines = [header]
    print(header, flush=True)
    for configuration in configurations:
        r = run(args.signal, args.items, args.seconds, configuration, args.processes, args.threads)
        lines.append(f"| {r['settings']} | {r['accepted_per_s']:,.0f} | {r['committed_per_s']:,.0f} | "
                     f"{r['items_per_cpu_s']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                     f"{r['committed_rows']:,} / {r['accepted_items']:,} | {r['codes']} |")
        print(lines[-1], flush=True)
    if args.write_results:
        command = "python -m bench.load " + " ".join(
            f"'{a}'" if " " in a else a for a in sys.argv[1:] if a != "--write-results")
        append(f"Load ({args.signal}, {args.items} items a request)", command,
               f"the load generator ({args.processes} processes x {args.threads} threads) shares the machine", lines)

if __name__ == "__main__":
    main()
