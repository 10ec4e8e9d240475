"""Command line: `otlp2parquet serve` and `otlp2parquet config`. Settings are loaded once, here."""

from __future__ import annotations

import argparse
import datetime as dt
import faulthandler
import gc
import json
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from otlp2parquet import __version__
from otlp2parquet.config import Settings, load_settings, redacted, to_toml
from otlp2parquet.errors import CatalogError, ConfigError
from otlp2parquet.maintenance import Plan, maintain, parse_duration

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from otlp2parquet.telemetry import Telemetry

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        text = super().format(record)
        return text + (" " + " ".join(f"{k}={v}" for k, v in extras.items()) if extras else "")


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.logging.format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.logging.level.upper())
    for noisy in ("pyiceberg", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otlp2parquet", description=__doc__)
    parser.add_argument("--version", action="version", version=f"otlp2parquet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("serve", "serve OTLP/gRPC and write Iceberg tables or Parquet files"),
                            ("config", "print the effective configuration (TOML, secrets redacted)"),
                            ("maintain", "expire snapshots, clean metadata, apply retention, remove orphan files"),
                            ("tables", "list the tables: rows, data files, bytes, snapshots, newest commit"),
                            ("query", "run SQL (DuckDB) over the tables, registered under their names")):
        cmd = commands.add_parser(name, help=help_text)
        cmd.add_argument("--config", help="TOML configuration file")
        cmd.add_argument("--listen", help="HOST:PORT for OTLP/gRPC (default 127.0.0.1:4317)")
        cmd.add_argument("--base-path", help="root for the embedded catalog, warehouse and Parquet files")
        cmd.add_argument("--log-format", choices=["json", "text"])
        cmd.add_argument("--no-iceberg", action="store_true", help="write plain Parquet files, no catalog")
        if name == "maintain":
            cmd.add_argument("--dry-run", action="store_true", help="report what would be done, change nothing")
            cmd.add_argument("--table", action="append", help="only this table (repeatable; default: all seven)")
            cmd.add_argument("--expire-older-than", default="1d", help="expire snapshots older than this "
                             "('off' to skip; default 1d)")
            cmd.add_argument("--keep-last", type=int, default=10, help="always keep the newest N snapshots")
            cmd.add_argument("--orphans-older-than", default="3d", help="remove unreferenced files older than "
                             "this ('off' to skip; default 3d)")
            cmd.add_argument("--retention", action="append", default=[], metavar="[TABLE=]AGE",
                             help="delete rows older than AGE, in TABLE or in all tables (repeatable)")
            cmd.add_argument("--compact-after", default="2d", help="compact small files of partitions older than "
                             "this that received nothing for as long ('off' to skip; default 2d)")
            cmd.add_argument("--target-file-bytes", type=int, default=128 * 1024 * 1024,
                             help="compaction's target data file size (default 128 MiB)")
        if name == "query":
            cmd.add_argument("sql", help="the SQL; tables are named logs, traces, metrics_gauge, ...")
            cmd.add_argument("--format", choices=["table", "csv", "json"], default="table")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    flags: dict[str, dict[str, Any]] = {}
    for value, section, key in ((args.listen, "server", "listen"), (args.base_path, "writer", "base_path"),
                                (args.log_format, "logging", "format")):
        if value is not None:
            flags.setdefault(section, {})[key] = value
    if args.no_iceberg:
        flags.setdefault("iceberg", {})["enabled"] = False
    return flags


def _stop_signals() -> Callable[[], int]:
    """Install SIGTERM/SIGINT handlers; returns a function that blocks until one arrives and returns its number.

    The handlers take no lock: one that sets a threading.Event can deadlock when a second signal (make forwards
    SIGTERM to its child) arrives while the main thread holds the Event's lock. They note the signal, and the
    wake-up socket (which gets a byte for every handled signal, not only these) wakes the waiting main thread.
    SIGQUIT prints every thread's stack to stderr and the server goes on, for a hung shutdown.
    """
    received: list[int] = []
    # Both ends live as long as `wait`: a collected socket closes its fd, and the handlers would then write into
    # whatever file or pipe reuses the number, while recv on the orphaned end returns at once, forever.
    wakeup = socket.socketpair()  # (read end, write end)
    wakeup[1].setblocking(False)
    signal.set_wakeup_fd(wakeup[1].fileno(), warn_on_full_buffer=False)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _: received.append(number))
    faulthandler.register(signal.SIGQUIT, all_threads=True)

    def wait() -> int:
        while not received:
            wakeup[0].recv(64)
        return received[0]
    return wait


def _settle_heap(telemetry: Telemetry) -> Callable[[], None]:
    """Exempt the start-up heap from garbage collection, and time the collections from here on.

    After start-up the process holds about 127,000 long-lived objects (modules, pyiceberg, pydantic, gRPC), and
    every full collection walked them all while every thread waited: the one full collection of a 30 s traces run
    at 5,000 spans/s took 81 ms, against 3 ms with them frozen (ad hoc, docs/design.md item 8), and that pause
    lands in the latency of the exports in flight. The start-up garbage is collected first, so none of it is
    frozen in place. This runs after the server has started, so the first exports may meet that one collection.
    """
    gc.collect()
    gc.freeze()
    telemetry.gc_frozen_objects.set(gc.get_freeze_count())
    return telemetry.watch_collections()


def serve(settings: Settings) -> int:
    from otlp2parquet.service import Service

    service = Service(settings)
    wait_for_stop = _stop_signals()
    service.start()
    stop_watching = _settle_heap(service.telemetry)
    logging.getLogger("otlp2parquet").info("stopping on %s", signal.Signals(wait_for_stop()).name)
    ok = service.stop()
    stop_watching()
    if not ok:
        logging.getLogger("otlp2parquet").error("exiting with unwritten data; see the flush errors above")
    return 0 if ok else 1


def _tables(settings: Settings, only: list[str] | None = None) -> dict[str, Table]:
    """The existing tables by name (without prefix)."""
    from pyiceberg.exceptions import NoSuchTableError

    from otlp2parquet.schemas import TABLES
    from otlp2parquet.writer.catalogs import build_catalog

    if not settings.iceberg.enabled:
        raise ConfigError("this command reads Iceberg tables; iceberg.enabled is false")
    catalog = build_catalog(settings)
    found = {}
    for name in only or list(TABLES):
        if name not in TABLES:
            raise ConfigError(f"unknown table {name!r}; expected one of {', '.join(TABLES)}")
        try:
            found[name] = catalog.load_table((settings.iceberg.namespace, settings.writer.table_prefix + name))
        except NoSuchTableError:
            continue
    return found


def _plan(args: argparse.Namespace) -> Plan:
    from otlp2parquet.schemas import TABLES

    def duration(text: str) -> dt.timedelta | None:
        return None if text == "off" else parse_duration(text)

    retention: dict[str, dt.timedelta] = {}
    for item in args.retention:
        table, _, age = item.rpartition("=")
        for name in [table] if table else list(TABLES):
            if name not in TABLES:
                raise ConfigError(f"--retention: unknown table {name!r}")
            retention[name] = parse_duration(age)
    return Plan(duration(args.expire_older_than), args.keep_last, duration(args.orphans_older_than), retention,
                args.dry_run, duration(args.compact_after), args.target_file_bytes)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config, _overrides(args))
        if args.command == "config":
            sys.stdout.write(to_toml(redacted(settings)))
            return 0
        setup_logging(settings)
        if args.command == "maintain":
            plan = _plan(args)
            tables = _tables(settings, args.table)
            reports = maintain(tables.get, plan, list(tables), settings)
            sys.stdout.write("".join(r.line() + "\n" for r in reports))
            return 0
        if args.command == "tables":
            from otlp2parquet.query import render, table_summary

            summaries = [table_summary(n, t) for n, t in _tables(settings).items()]
            columns = ["table", "rows", "data_files", "bytes", "snapshots", "newest_commit"]
            sys.stdout.write(render(columns, [tuple(s[c] for c in columns) for s in summaries], "table"))
            return 0
        if args.command == "query":
            from otlp2parquet.query import render, run_query

            columns, rows = run_query(_tables(settings), args.sql)
            sys.stdout.write(render(columns, rows, args.format))
            return 0
        return serve(settings)
    except ConfigError as exc:
        print(f"otlp2parquet: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a bad duration or the like, from the command line
        print(f"otlp2parquet: {exc}", file=sys.stderr)
        return 2
    except CatalogError as exc:
        print(f"otlp2parquet: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
