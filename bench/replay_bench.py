"""Crash-recovery time: how fast a sidecar replays a WAL that no commit covers yet.

    python -m bench.replay_bench [--requests 200] [--items 1000] [--write-results]

Writes a WAL of pre-serialized trace requests (as a crashed sidecar would leave it), starts the sidecar on it,
and reads the replay duration and the rows it committed from the log and the table.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

from bench.results import append
from bench.workload import requests
from otlp2parquet.config import WalSettings
from otlp2parquet.wal import WriteAheadLog


def run(count: int, items: int) -> dict[str, float]:
    base = pathlib.Path(tempfile.mkdtemp(prefix="otlp2parquet-replay-"))
    wal = WriteAheadLog(base / "wal", WalSettings(fsync="off"))
    wal.open(1)
    payloads = list(requests("traces", items, 8, seed=3))
    for i in range(count):
        wal.append("traces", payloads[i % len(payloads)])
    wal.close()
    wal_bytes = wal.size_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTLP2PARQUET_")}
    env["OTLP2PARQUET_TELEMETRY__ENABLED"] = "false"
    log_path = base / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen([sys.executable, "-m", "otlp2parquet", "serve", "--listen", "127.0.0.1:0",
                                   "--base-path", str(base)], env=env, stdout=log, stderr=subprocess.STDOUT)
        done = None
        deadline = time.monotonic() + 600
        while done is None and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.2)
            for line in log_path.read_text().splitlines():
                if '"WAL replay done"' in line:
                    done = json.loads(line)
        server.send_signal(signal.SIGTERM)
        server.wait()
    if done is None:
        raise RuntimeError(log_path.read_text())
    return {"records": done["records"], "rows": done["rows"], "seconds": done["duration_s"],
            "rows_per_s": done["rows"] / done["duration_s"], "wal_mib": wal_bytes / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    r = run(args.requests, args.items)
    line = (f"| {r['records']:,} requests, {r['rows']:,} spans, {r['wal_mib']:.0f} MiB of WAL | "
            f"{r['seconds']:.1f} s | {r['rows_per_s']:,.0f} spans/s |")
    print(line)
    if args.write_results:
        append("WAL replay at start", f"python -m bench.replay_bench --requests {args.requests} --items {args.items}",
               "default buffer settings, embedded SQLite catalog",
               ["| WAL | replay time | rate |", "|---|---|---|", line])

if __name__ == "__main__":
    main()
