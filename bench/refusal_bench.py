"""What refusing an export costs the server: its CPU per refused request, read first or refused unread.

    python -m bench.refusal_bench [--megabytes 4.8] [--requests 200] [--write-results]

At saturation most exports are refused (UNAVAILABLE) and come back later, so the cost of a refusal is paid
many times over. The receiver serves Export client-streaming to refuse before reading; "read first" is the
same receiver behind a unary handler, which gRPC calls only once the whole request is in. A spawned client
process sends the requests (four threads) to a real server that refuses them all (shutting down, checked
where a full buffer is); only the server's CPU counts.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc

from bench.results import report
from otlp2parquet.buffer import Buffer
from otlp2parquet.config import BufferSettings
from otlp2parquet.receiver import SERVICES, Receiver

LOGS = next(svc for svc in SERVICES if svc.signal == "logs")
METHOD = f"/{LOGS.service}/Export"
OPTIONS = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]


def _send(port: int, size: int, requests: int) -> None:
    payload = b"\xff" * size  # never read when refused unread; refused as full either way
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=OPTIONS) as channel:
        call = channel.unary_unary(METHOD)

        def one(_: int) -> str:
            try:
                call(payload, timeout=30)
                return "OK"
            except grpc.RpcError as exc:
                return exc.code().name

        with ThreadPoolExecutor(4) as pool:
            codes = set(pool.map(one, range(requests)))
    if codes != {"UNAVAILABLE"}:
        raise SystemExit(f"expected every request refused, got {codes}")


def _full_receiver() -> Receiver:
    receiver = Receiver(Buffer(BufferSettings()))
    receiver.shutting_down = True  # refuses every export, as a full buffer does, before any conversion
    return receiver


def _handlers(receiver: Receiver, read_first: bool) -> grpc.GenericRpcHandler:
    handler = receiver.method_handler(LOGS)
    if read_first:
        export: Callable = receiver.export_function(LOGS)
        handler = grpc.unary_unary_rpc_method_handler(lambda request, context: export(iter((request,)), context),
                                                      response_serializer=lambda m: m.SerializeToString())
    return grpc.method_handlers_generic_handler(LOGS.service, {"Export": handler})


def measure(read_first: bool, size: int, requests: int) -> float:
    """Server CPU milliseconds per refused request."""
    server = grpc.server(ThreadPoolExecutor(8), handlers=[_handlers(_full_receiver(), read_first)], options=OPTIONS)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        client = mp.get_context("spawn").Process(target=_send, args=(port, size, requests))
        before = os.times()
        client.start()
        client.join()
        after = os.times()
        if client.exitcode != 0:
            raise SystemExit(f"client exited with {client.exitcode}")
    finally:
        server.stop(0)
    return ((after.user - before.user) + (after.system - before.system)) / requests * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=4.8, help="request size (8,192 spans are about 4.8 MB)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the two handlers")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    size = int(args.megabytes * 1_000_000)
    costs: dict[bool, list[float]] = {True: [], False: []}
    started = time.monotonic()
    for _ in range(args.rounds):
        for read_first in (True, False):
            costs[read_first].append(measure(read_first, size, args.requests))
    table = ["| handler | server CPU ms per refused request (each round) |", "|---|---|"]
    for read_first, label in ((True, "read first (unary)"), (False, "refused unread (the receiver's)")):
        table.append(f"| {label} | {', '.join(f'{c:.2f}' for c in costs[read_first])} |")
    report(table, args.write_results, f"Cost of a refused export ({args.megabytes:g} MB)", "bench.refusal_bench",
           f"{args.requests} requests per round from a spawned client (4 threads); {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
