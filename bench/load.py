"""End-to-end load: start the sidecar with a configuration, send pre-serialized requests, measure what commits.

    python -m bench.load --signal traces --items 1000 --seconds 10 --set wal.fsync=always [--rotel] [--write-results]

Load comes from separate processes (so the sender's CPU is not the sidecar's), each with a few threads sending
as fast as acknowledgements allow, or at a fixed total `--rate` of items per second (for latency below
saturation). Reported: accepted items/s; committed rows (read back from the tables) per second of the run until
the final commit; items per CPU-second of the sidecar and its conversion workers (user+system from /proc, sampled
until it exits, so the final flush counts); export latency p50/p99 as the client sees it, and the share of
exports the sidecar itself answered within the 50 ms target (its export histogram) and how many garbage
collections stopped it for over 25 ms; peak RSS (VmHWM of the server plus each worker's); bytes of data files
per committed item; commits per table per minute, and the shortest time between two commits of one table before
the shutdown's (the one-commit-per-interval target); every status code seen; the load generator's own CPU in cores
(on a two-core machine, what it uses is not available to the sidecar).
`--rotel` sends the same load to rotel-agent with its blackhole exporter, a native receiver that decodes and
drops, as the ceiling to compare with.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import itertools
import math
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
import urllib.request
from collections import Counter
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier as BarrierType
from typing import NamedTuple

import grpc
from prometheus_client.parser import text_string_to_metric_families

from bench.results import append, command_line
from bench.workload import requests
from otlp2parquet.config import ServerSettings

PR_SET_PDEATHSIG = 1  # prctl(2)

ROOT = pathlib.Path(__file__).resolve().parents[1]
METHODS = {"traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
           "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
           "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"}
TABLES = {"traces": ["traces"], "logs": ["logs"],
          "metrics": ["metrics_gauge", "metrics_sum", "metrics_histogram", "metrics_exponential_histogram",
                      "metrics_summary"]}

# A flush holds up to about 57,000 spans or 100,000 log records (64 MiB of Arrow data): cycle through more.
DISTINCT_ITEMS = 256_000
LATENCY_TARGET_S = 0.05  # the export p99 target; a bound of the sidecar's export histogram


@dataclass
class Outcome:
    codes: Counter
    latencies: list[float]
    accepted_items: int
    cpu_s: float  # the sending process's own CPU: on a small machine it is taken from the sidecar's share


def _sender(address: str, signal_name: str, payloads: list[bytes], items: int, seconds: float, threads: int,
            interval: float, slot: int, ready: BarrierType, queue: mp.Queue) -> None:
    """One load process: `threads` threads over one channel, until `seconds` have passed; each thread sends a
    request every `interval` seconds (0: as soon as the previous one is acknowledged).

    At a fixed rate every thread of every process gets its own phase (`slot` numbers this process), so arrivals
    are evenly spaced: unsynchronised processes would send in bursts, and the latency would measure the bursts.
    """
    channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 128 * 1024 * 1024)])
    call = channel.unary_unary(METHODS[signal_name])
    # Connect before the clock starts: connection setup is not export latency, and with a few requests a
    # second it would be most of the p99.
    grpc.channel_ready_future(channel).result(timeout=30)
    ready.wait(timeout=60)
    first = time.monotonic()
    deadline = first + seconds
    lock = threading.Lock()
    codes: Counter = Counter()
    latencies: list[float] = []
    accepted = 0

    def run(offset: int) -> None:
        nonlocal accepted
        senders = ready.parties * threads
        i = slot * threads + offset  # this sender's own requests, and its own phase within the interval
        due = first + interval * i / senders
        while time.monotonic() < deadline:
            if interval:
                time.sleep(max(0.0, due - time.monotonic()))
                due += interval
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
            if code == "UNAVAILABLE":
                time.sleep(0.05)  # outside the lock: this sender backs off, its process's others go on
            i += senders

    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    channel.close()
    queue.put(Outcome(codes, latencies, accepted, time.process_time()))


class Usage(NamedTuple):
    """What a process has cost so far; the kernel's share and the page faults show where a change acts."""
    cpu_s: float
    system_s: float
    minor_faults: int

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.cpu_s - other.cpu_s, self.system_s - other.system_s, self.minor_faults - other.minor_faults)


def _stat(pid: int, reaped: bool) -> tuple[int, int, int]:
    """(user ticks, system ticks, minor faults), with those of the reaped children if `reaped`."""
    fields = [int(f) for f in pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7:15]]
    minflt, cminflt, utime, stime, cutime, cstime = fields[0], fields[1], *fields[4:8]
    if reaped:
        return utime + cutime, stime + cstime, minflt + cminflt
    return utime, stime, minflt


def _children(pid: int) -> list[int]:
    found = []
    for task in pathlib.Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(c) for c in task.read_text().split()]
    return found


def _usage(pid: int) -> Usage:
    """User+system CPU of `pid`, of the children it has reaped and of those still running (conversion workers)."""
    user, system, faults = _stat(pid, reaped=True)
    for child in _children(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # exited in between: counted once reaped
            more = _stat(child, reaped=False)
            user, system, faults = user + more[0], system + more[1], faults + more[2]
    tick = os.sysconf("SC_CLK_TCK")
    return Usage((user + system) / tick, system / tick, faults)


def _peak_rss_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Tables:
    rows: int
    data_bytes: int
    commits: dict[str, int]
    commit_times: dict[str, list[float]]  # each snapshot's time, seconds since the epoch

    def shortest_commit_gap_s(self, before: float) -> float:
        """The least time between two commits of one table made before `before` (the shutdown's commit flushes
        what is left whatever the interval, so it is left out): the "one commit per table per interval" target
        read off the catalog. nan when no table committed twice before it."""
        gaps = [b - a for times in self.commit_times.values()
                for a, b in itertools.pairwise(sorted(t for t in times if t < before))]
        return min(gaps, default=float("nan"))


def _tables(base: pathlib.Path, signal_name: str) -> Tables:
    """Committed rows, data-file bytes and the commits of the signal's tables."""
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("otlp2parquet", uri=f"sqlite:///{base}/catalog.db")
    rows = data_bytes = 0
    commits: dict[str, int] = {}
    times: dict[str, list[float]] = {}
    for name in TABLES[signal_name]:
        table = catalog.load_table(f"otel.{name}")
        snapshot = table.current_snapshot()
        summary = snapshot.summary if snapshot and snapshot.summary else None
        rows += int(summary.get("total-records", 0)) if summary else 0
        data_bytes += int(summary.get("total-files-size", 0)) if summary else 0
        commits[name] = len(table.snapshots())
        times[name] = [s.timestamp_ms / 1000 for s in table.snapshots()]
    return Tables(rows, data_bytes, commits, times)


def _child_setup(cpus: int) -> None:
    """In the target process before exec: its CPUs, and SIGTERM when the harness dies (a killed benchmark or
    a timed-out smoke test must not leave a sidecar behind). The kernel sends it when the thread that started
    the target ends, so a Target belongs to a thread that outlives it."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if cpus:
        os.sched_setaffinity(0, range(cpus))


class Target:
    """A process under load: its address, pid, and how to stop it."""

    def __init__(self, command: list[str], env: dict[str, str], address: str, log: pathlib.Path,
                 cpus: int = 0, metrics_address: str | None = None) -> None:
        self.address = address
        self.metrics_address = metrics_address
        self._log = log.open("w")
        self.proc = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     preexec_fn=functools.partial(_child_setup, cpus))
        self._wait_listening()
        self._child_peaks: dict[int, float] = {}
        self._sampling = threading.Thread(target=self._sample_children, daemon=True)
        self._sampling.start()

    def _sample_children(self) -> None:
        """Peak RSS of each child (the conversion workers) while it lives: they exit before the server does."""
        while self.proc.poll() is None:
            try:
                for child in _children(self.proc.pid):
                    peak = _peak_rss_mib(child)
                    if peak == peak:
                        self._child_peaks[child] = max(self._child_peaks.get(child, 0.0), peak)
            except (FileNotFoundError, ProcessLookupError, ValueError):
                pass
            time.sleep(0.2)

    def _wait_listening(self) -> None:
        host, port = self.address.rsplit(":", 1)
        for _ in range(600):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.proc.args[0]} exited with {self.proc.returncode}")
            with socket.socket() as s:
                if s.connect_ex((host, int(port))) == 0:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"nothing listens on {self.address}")

    def stop(self) -> tuple[Usage, float]:
        """SIGTERM, then sample CPU and peak RSS until exit (a final flush counts): (usage, peak RSS MiB).

        Both include the conversion workers: their CPU once the server has reaped them, and their RSS as the sum
        of each process's peak, an upper bound (the peaks need not coincide, and shared pages count twice)."""
        usage = _usage(self.proc.pid)
        rss = _peak_rss_mib(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        while self.proc.poll() is None:
            try:
                usage, last = _usage(self.proc.pid), _peak_rss_mib(self.proc.pid)
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                break
            rss = max(rss, last) if last == last else rss  # a zombie has no VmHWM any more
            time.sleep(0.05)
        self.proc.wait()
        self._sampling.join()
        self._log.close()
        return usage, rss + sum(self._child_peaks.values())


def _sidecar(base: pathlib.Path, settings: list[str], cpus: int = 0) -> Target:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTLP2PARQUET_")}
    for item in settings:
        key, value = item.split("=", 1)
        if "." not in key:  # NAME=VALUE: an environment variable of the sidecar, e.g. an allocator's setting
            env[key] = value
            continue
        section, name = key.split(".", 1)
        env[f"OTLP2PARQUET_{section.upper()}__{name.upper()}"] = value
    metrics_address = env["OTLP2PARQUET_METRICS_LISTEN"] = f"127.0.0.1:{_free_port()}"
    address = f"127.0.0.1:{_free_port()}"
    target = Target([sys.executable, "-m", "otlp2parquet", "serve", "--listen", address, "--base-path", str(base)],
                    env, address, base / "server.log", cpus, metrics_address)
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:  # listening is not yet serving: the WAL may be replaying
        for _ in range(300):
            try:
                if health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    break
            except grpc.RpcError:
                time.sleep(0.1)
    return target


def _rotel(base: pathlib.Path) -> Target:
    binary = ROOT / ".tools" / "rotel-agent"
    if not binary.exists():
        raise FileNotFoundError(f"{binary} is missing: `make tools` fetches it")
    address = f"127.0.0.1:{_free_port()}"
    # rotel refuses requests over 4 MiB by default, and 8,192 spans take about 4.6 MiB: give it the sidecar's limit.
    max_mib = ServerSettings().max_receive_bytes // 2**20
    return Target([str(binary), "start", "--otlp-grpc-endpoint", address, "--otlp-http-endpoint",
                   f"127.0.0.1:{_free_port()}", "--pid-file", str(base / "rotel.pid"), "--exporter", "blackhole",
                   "--otlp-grpc-max-recv-msg-size-mib", str(max_mib)],
                  dict(os.environ), address, base / "rotel.log")


@functools.cache
def payloads(signal_name: str, items: int, distinct_items: int) -> tuple[bytes, ...]:
    """The requests the senders cycle through. There must be more of them than one flush holds: a file that
    holds each request several times compresses the repeats away, and bytes per item on disk look too good
    (traces: 35 bytes per span with 16 requests of 1,000 spans cycled, 102 with every span distinct)."""
    return tuple(requests(signal_name, items, max(1, -(-distinct_items // items)), seed=7))


def _load(address: str, signal_name: str, items: int, seconds: float, processes: int, threads: int,
          rate: float, distinct_items: int = DISTINCT_ITEMS) -> tuple[list[Outcome], float]:
    pool = list(payloads(signal_name, items, distinct_items))
    interval = processes * threads * items / rate if rate else 0.0
    # Spawned, not forked: this process already runs gRPC's threads and the RSS sampler, and a child forked
    # from it could inherit a lock some thread held and hang before sending anything (seen in the smoke test).
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    ready = ctx.Barrier(processes)
    started = time.monotonic()
    senders = [ctx.Process(target=_sender, args=(address, signal_name, pool, items, seconds, threads, interval,
                                                slot, ready, queue)) for slot in range(processes)]
    for p in senders:
        p.start()
    outcomes = [queue.get() for _ in senders]
    for p in senders:
        p.join()
    return outcomes, started


def _buckets(text: str, family_name: str, **labels: str) -> dict[float, float]:
    """A histogram's cumulative bucket counts by upper bound, summed over the series matching `labels`."""
    counts: Counter[float] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name != family_name:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and all(sample.labels.get(k) == v for k, v in labels.items()):
                counts[float(sample.labels["le"])] += sample.value
    return dict(counts)


def sidecar_latency(metrics_address: str, signal_name: str, seconds: float) -> tuple[float, int]:
    """From the sidecar's own histograms: the share of exports it answered within `seconds` of their arrival
    (the latency the client sees, less transport and the client), and how many garbage collections paused every
    thread for longer than half of `seconds`. `seconds` and its half must be bounds of those histograms' buckets."""
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=10) as response:
        text = response.read().decode()
    exports = _buckets(text, "otlp2parquet_export_duration_seconds", signal=signal_name)
    pauses = _buckets(text, "otlp2parquet_gc_pause_seconds")
    total = exports.get(math.inf, 0.0)
    share = exports[seconds] / total if total else float("nan")
    return share, int(pauses.get(math.inf, 0.0) - pauses.get(seconds / 2, 0.0))


def run(signal_name: str, items: int, seconds: float, settings: list[str], processes: int, threads: int,
        rate: float = 0.0, target: str = "sidecar", cpus: int = 0,
        distinct_items: int = DISTINCT_ITEMS) -> dict[str, object]:
    """One measured run against the sidecar (with `settings`, on the first `cpus` CPUs if set) or against
    rotel-agent's blackhole exporter."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="otlp2parquet-bench-"))
    process = _sidecar(base, settings, cpus) if target == "sidecar" else _rotel(base)
    before = _usage(process.proc.pid)
    outcomes, started = _load(process.address, signal_name, items, seconds, processes, threads, rate,
                              distinct_items)
    load_done = time.monotonic()
    within, long_pauses = (sidecar_latency(process.metrics_address, signal_name, LATENCY_TARGET_S)
                           if process.metrics_address else (float("nan"), -1))
    stopping = time.time()
    final, peak_rss = process.stop()
    finished = time.monotonic()
    codes = sum((o.codes for o in outcomes), Counter())
    latencies = sorted(lat for o in outcomes for lat in o.latencies)
    accepted = sum(o.accepted_items for o in outcomes)
    quantile = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    tables = _tables(base, signal_name) if target == "sidecar" else Tables(accepted, 0, {}, {})
    usage = final - before
    cpu = max(usage.cpu_s, 1e-9)
    minutes = (finished - started) / 60
    return {
        "target": target,
        "settings": ((" ".join(settings) or "defaults") + (f", {cpus} CPU" if cpus else "")
                     if target == "sidecar" else "blackhole exporter"),
        "rate": rate,
        "accepted_per_s": accepted / (load_done - started),
        "committed_rows": tables.rows,
        "accepted_items": accepted,
        "committed_per_s": tables.rows / (finished - started),
        "items_per_cpu_s": tables.rows / cpu,
        "cpu_s": cpu,
        "system_share": usage.system_s / cpu,
        "faults_per_item": usage.minor_faults / tables.rows if tables.rows else float("nan"),
        "p50_ms": quantile[49] * 1000,
        "p99_ms": quantile[98] * 1000,
        "sidecar_within_target": within,
        "long_gc_pauses": long_pauses,
        "peak_rss_mib": peak_rss,
        "bytes_per_item": tables.data_bytes / tables.rows if tables.data_bytes and tables.rows else float("nan"),
        "commits_per_table_per_min": max((n / minutes for n in tables.commits.values()), default=float("nan")),
        "shortest_commit_gap_s": tables.shortest_commit_gap_s(stopping),
        "codes": dict(codes),
        "load_cores": sum(o.cpu_s for o in outcomes) / (load_done - started),
        "exit_code": process.proc.returncode,
    }


COLUMNS = ["target", "configuration", "offered", "accepted items/s", "committed rows/s", "items per CPU-s", "p50 ms",
           "p99 ms", "system CPU share", "page faults per item", "answered in the sidecar within 50 ms",
           "GC pauses over 25 ms", "peak RSS MiB", "bytes/item on disk", "commits/table/min (max)",
           "shortest gap between a table's commits before shutdown, s",
           "committed / acked", "status codes", "load generator cores"]
HEADER = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS)


def _share(value: float) -> str:
    return "-" if value != value else f"{value:.1%}"  # nan: rotel has no such histogram


def _seconds(value: float) -> str:
    return "-" if value != value else f"{value:.1f}"  # nan: no table committed twice before the shutdown


def line(r: dict) -> str:
    cells = [r["target"], r["settings"], f"{r['rate']:,.0f}/s" if r["rate"] else "max", f"{r['accepted_per_s']:,.0f}",
             f"{r['committed_per_s']:,.0f}", f"{r['items_per_cpu_s']:,.0f}", f"{r['p50_ms']:.1f}",
             f"{r['p99_ms']:.1f}", f"{r['system_share']:.1%}", f"{r['faults_per_item']:.2f}",
             _share(r["sidecar_within_target"]),
             "-" if r["long_gc_pauses"] < 0 else str(r["long_gc_pauses"]), f"{r['peak_rss_mib']:.0f}",
             f"{r['bytes_per_item']:.1f}",
             f"{r['commits_per_table_per_min']:.1f}", _seconds(r["shortest_commit_gap_s"]),
             f"{r['committed_rows']:,} / {r['accepted_items']:,}",
             str(r["codes"]), f"{r['load_cores']:.2f}"]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signal", choices=sorted(METHODS), default="traces")
    parser.add_argument("--items", type=int, default=1000, help="items per request")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="threads per load process")
    parser.add_argument("--rate", type=float, default=0.0, help="offered items/s in total (default: as fast as acked)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a sidecar setting, or NAME=VALUE for an environment variable of the sidecar; "
                        "repeat --set, or use --compare to run several configurations")
    parser.add_argument("--compare", action="append", default=[], metavar="'SECTION.KEY=V [SECTION.KEY=V...]'",
                        help="one configuration per --compare (space-separated settings), run one after another")
    parser.add_argument("--rotel", action="store_true", help="also send the same load to rotel-agent (blackhole)")
    parser.add_argument("--cpus", action="append", type=int, default=[],
                        help="pin the sidecar to this many CPUs; repeat (--cpus 1 --cpus 2) to measure scaling")
    parser.add_argument("--distinct-items", type=int, default=DISTINCT_ITEMS,
                        help="items in the distinct requests cycled through (more than one flush holds)")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    configurations = [c.split() for c in args.compare] or [args.set]
    lines = [HEADER]
    print(HEADER, flush=True)
    results = []
    for configuration in configurations:
        for cpus in args.cpus or [0]:
            results.append(run(args.signal, args.items, args.seconds, configuration, args.processes, args.threads,
                               args.rate, cpus=cpus, distinct_items=args.distinct_items))
            lines.append(line(results[-1]))
            print(lines[-1], flush=True)
    if len(args.cpus) > 1:
        low, high = min(args.cpus), max(args.cpus)
        for k, configuration in enumerate(configurations):  # one line per configuration
            by_cpus = dict(zip(args.cpus, results[k * len(args.cpus):(k + 1) * len(args.cpus)], strict=True))
            scaling = (f"- committed rows/s, {high} CPUs / {low} CPU ({' '.join(configuration) or 'defaults'}): "
                       f"{by_cpus[high]['committed_per_s'] / by_cpus[low]['committed_per_s']:.2f}")
            lines.append(scaling)
            print(scaling, flush=True)
    if args.rotel:
        ceiling = run(args.signal, args.items, args.seconds, [], args.processes, args.threads, args.rate, "rotel",
                      distinct_items=args.distinct_items)
        lines.append(line(ceiling))
        print(lines[-1], flush=True)
        if not ceiling["items_per_cpu_s"]:  # no ratio to report; say why rather than divide by zero
            raise SystemExit(f"rotel accepted nothing ({ceiling['codes']}); see rotel.log in the run's directory")
        for r in results:
            share = r["items_per_cpu_s"] / ceiling["items_per_cpu_s"]
            ratio = f"- sidecar ({r['settings']}) / rotel, items per CPU-s: {share:.2f}"
            lines.append(ratio)
            print(ratio, flush=True)
    if args.write_results:
        command = command_line("bench.load")
        append(f"Load ({args.signal}, {args.items} items a request)", command,
               f"the load generator ({args.processes} processes x {args.threads} threads) shares the machine; "
               f"it cycles through {len(payloads(args.signal, args.items, args.distinct_items))} distinct requests",
               lines)


if __name__ == "__main__":
    main()
