"""Where the sidecar's time goes under load: py-spy samples the running sidecar, grouped by the innermost
otlp2parquet frame.

By default only the thread holding the GIL is sampled: what limits one Python process. With `--all-threads`
every busy thread of the server and of its conversion workers is sampled, native frames included (zstd,
Parquet encoding, gRPC): what the CPU-seconds are spent on.

    python -m bench.profile --signal traces --seconds 15 [--all-threads] [--set server.convert_processes=0]
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter

from bench.load import DISTINCT_ITEMS, _load, _sidecar, payloads
from bench.results import report


def hot_spots(raw: str, top: int) -> list[tuple[str, float]]:
    """py-spy's raw (collapsed) stacks -> (frame, share of samples), the frame being the innermost one of ours."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        ours = [f for f in frames if "otlp2parquet/" in f or "bench/" in f]
        counts[ours[-1] if ours else frames[-1]] += int(count)
    total = sum(counts.values()) or 1
    return [(frame, n / total) for frame, n in counts.most_common(top)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signal", choices=["traces", "logs", "metrics"], default="traces")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--all-threads", action="store_true",
                        help="sample every busy thread, with native frames, workers included (not only the GIL)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    mode = ["--subprocesses"] if args.all_threads else ["--gil", "--nonblocking"]
    py_spy = shutil.which("py-spy") or str(pathlib.Path(sys.executable).with_name("py-spy"))
    payloads(args.signal, 1000, DISTINCT_ITEMS)  # generated before sampling starts, not while it runs
    base = pathlib.Path(tempfile.mkdtemp(prefix="otlp2parquet-profile-"))
    sidecar = _sidecar(base, args.set)
    out = base / "profile.txt"
    sampler = threading.Thread(target=subprocess.run, args=([
        py_spy, "record", "--pid", str(sidecar.proc.pid), "--duration", str(int(args.seconds) - 2), *mode,
        "--rate", "200", "--format", "raw", "--output", str(out)],), kwargs={"check": True,
                                                                                            "capture_output": True})
    sampler.start()
    _load(sidecar.address, args.signal, 1000, args.seconds, 2, 4, 0.0)
    sampler.join()
    sidecar.stop()
    rows = [f"| {share:.1%} | `{frame}` |" for frame, share in hot_spots(out.read_text(), args.top)]
    what = "busy-thread samples (server and workers)" if args.all_threads else "GIL-held samples"
    table = [f"| share of {what} | innermost otlp2parquet frame (or the leaf) |", "|---|---|", *rows]
    report(table, args.write_results, f"Profile ({args.signal}, 1000 items a request, as fast as acked)",
           "bench.profile", f"py-spy {' '.join(mode)} on the sidecar ({' '.join(args.set) or 'defaults'}); the load "
           "generator (2 processes x 4 threads) shares the machine")


if __name__ == "__main__":
    main()
