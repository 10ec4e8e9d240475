"""Command line: `otlp2parquet serve` and `otlp2parquet config`. Settings are loaded once, here."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from typing import Any

from otlp2parquet import __version__
from otlp2parquet.config import Settings, load_settings, redacted, to_toml
from otlp2parquet.errors import ConfigError

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
                            ("config", "print the effective configuration (TOML, secrets redacted)")):
        cmd = commands.add_parser(name, help=help_text)
        cmd.add_argument("--config", help="TOML configuration file")
        cmd.add_argument("--listen", help="HOST:PORT for OTLP/gRPC (default 127.0.0.1:4317)")
        cmd.add_argument("--base-path", help="root for the embedded catalog, warehouse and Parquet files")
        cmd.add_argument("--log-format", choices=["json", "text"])
        cmd.add_argument("--no-iceberg", action="store_true", help="write plain Parquet files, no catalog")
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


def serve(settings: Settings) -> int:
    from otlp2parquet.service import Service

    service = Service(settings)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    service.start()
    stop.wait()
    ok = service.stop()
    if not ok:
        logging.getLogger("otlp2parquet").error("exiting with unwritten data; see the flush errors above")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config, _overrides(args))
        if args.command == "config":
            sys.stdout.write(to_toml(redacted(settings)))
            return 0
        setup_logging(settings)
        return serve(settings)
    except ConfigError as exc:
        print(f"otlp2parquet: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
