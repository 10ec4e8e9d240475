"""Settings: one pydantic-settings model, loaded once.

Precedence, later wins: defaults, the TOML file (`--config`), environment variables, command-line flags.
Environment variables use the seed's flat names (`OTLP2PARQUET_BASE_PATH`, ...) or the nested form
`OTLP2PARQUET_<SECTION>__<KEY>`; an unknown `OTLP2PARQUET_*` variable is an error, as is an unknown TOML key,
so a typo never silently falls back to a default.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import tomllib
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from otlp2parquet.errors import ConfigError

ENV_PREFIX = "OTLP2PARQUET_"
MiB = 1024 * 1024

# The seed design's flat variable names -> (section, key).
FLAT_ENV: dict[str, tuple[str, str]] = {
    "LISTEN": ("server", "listen"),
    "BASE_PATH": ("writer", "base_path"),
    "TABLE_PREFIX": ("writer", "table_prefix"),
    "PARTITION_BY_SERVICE": ("writer", "partition_by_service"),
    "ICEBERG_ENABLED": ("iceberg", "enabled"),
    "NAMESPACE": ("iceberg", "namespace"),
    "WARN_ON_CATALOG_FAILURE": ("iceberg", "warn_on_catalog_failure"),
    "CATALOG_URI": ("iceberg", "catalog_uri"),
    "S3_TABLES_ARN": ("iceberg", "s3_tables_arn"),
    "R2_ACCOUNT_ID": ("iceberg", "r2_account_id"),
    "R2_BUCKET_NAME": ("iceberg", "r2_bucket_name"),
    "R2_API_TOKEN": ("iceberg", "r2_api_token"),
    "REST_TOKEN": ("iceberg", "rest_token"),
    "REST_CREDENTIAL": ("iceberg", "rest_credential"),
    "S3_ACCESS_KEY_ID": ("iceberg", "s3_access_key_id"),
    "S3_SECRET_ACCESS_KEY": ("iceberg", "s3_secret_access_key"),
    "WAREHOUSE": ("iceberg", "warehouse"),
    "WAL_DIR": ("wal", "dir"),
    "WAL_FSYNC": ("wal", "fsync"),
    "METRICS_LISTEN": ("telemetry", "listen"),
    "LOG_FORMAT": ("logging", "format"),
    "LOG_LEVEL": ("logging", "level"),
}
SECRET_WORDS = ("token", "secret", "password", "credential", "key-id", "access-key", "key_id", "access_key",
                "account-key", "account_key", "private-key", "sas")
# Secrets may come only from the environment (or a Kubernetes Secret mapped into it), never from the TOML file.
ENV_ONLY = {("iceberg", "r2_api_token"), ("iceberg", "rest_token"), ("iceberg", "rest_credential"),
            ("iceberg", "s3_access_key_id"), ("iceberg", "s3_secret_access_key")}


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError("expected HOST:PORT")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    listen: str = Field("127.0.0.1:4317", description="gRPC listen address, HOST:PORT")
    max_receive_bytes: int = Field(64 * MiB, gt=0, description="largest accepted request, after decompression")
    reflection: bool = Field(True, description="serve gRPC server reflection (for grpcurl)")
    workers: int = Field(16, gt=0, description="gRPC handler threads; the Collector sends up to 10 at once")
    conversions: int = Field(1, gt=0, description="requests converted at once in the server process (at least two "
                             "per convert process); a second one there costs CPU, not time")
    group_bytes: int = Field(8 * MiB, ge=0, description="requests of a signal that queue for conversion are converted "
                             "and logged as one, up to this many bytes together; 0: each alone")
    convert_processes: int = Field(0, ge=-1, description="worker processes that decode and convert requests, "
                                   "since decoding holds the GIL; 0: in the server process; -1: one per usable CPU "
                                   "(at most 4) when there are two or more")
    native_decode: bool = Field(True, description="convert well-formed requests of every signal in native code, "
                                "which lets the GIL go; false: ptars for every request")
    memory_limit_bytes: int = Field(416 * MiB, ge=0, description="process RSS soft limit: above it, freed memory "
                                    "goes back to the OS at once and exports are refused (UNAVAILABLE) until RSS "
                                    "is below it again; keep it under the container's memory limit; 0: off")
    grace_s: float = Field(10.0, ge=0, description="how long in-flight exports may finish at shutdown")

    _listen = field_validator("listen")(lambda value: _host_port(value))


class BufferSettings(_Section):
    memory_budget_bytes: int = Field(160 * MiB, gt=0, description="Arrow bytes held across all tables")
    high_water_fraction: float = Field(0.8, gt=0, le=1, description="above this share of the budget, refuse")
    max_rows: int = Field(1_000_000, gt=0, description="flush a table at this many rows")
    max_bytes: int = Field(32 * MiB, gt=0, description="flush a table at this many Arrow bytes")
    max_age_s: float = Field(30.0, gt=0, description="flush a table when its oldest row is this old")
    parallel_flushes: int = Field(1, gt=0, description="flushes written at once across all tables; each also "
                                  "holds a sorted copy of its rows, which counts against the budget while it lives")
    retry_after_s: float = Field(2.0, gt=0, description="RetryInfo delay sent with UNAVAILABLE")

    def crowded_flush(self) -> str | None:
        """Why flushes of this size would get exports refused, if they would. A flush and its sorted copy take
        twice max_bytes of the budget while it is written; when that is more than half the high-water mark,
        what arrives meanwhile pushes the buffer over it, and exports are refused at every large flush."""
        high_water = self.memory_budget_bytes * self.high_water_fraction
        if 2 * self.max_bytes * self.parallel_flushes <= high_water / 2:
            return None
        return (f"buffer.max_bytes ({self.max_bytes}) is more than a quarter of the high-water mark "
                f"({high_water:.0f} bytes): while a flush is written, exports will be refused. Lower max_bytes "
                "or raise memory_budget_bytes")


class WriterSettings(_Section):
    base_path: str = Field("./data", description="root for the embedded catalog, warehouse and Parquet files")
    table_prefix: str = Field("", description="prefix for table names, e.g. 'otel_' for ClickHouse names")
    partition_by_service: bool = Field(True, description="plain Parquet: add the {service} path segment")
    compression_level: int = Field(1, ge=1, le=22, description="zstd level (1 measured fastest, and no larger than 3)")
    row_group_rows: int = Field(256 * 1024, gt=0, description="rows per Parquet row group")
    writer_id: str | None = Field(None, description="names this sidecar in snapshot summaries; default: host name")


class IcebergSettings(_Section):
    enabled: bool = Field(True, description="commit to Iceberg; false writes plain Parquet files")
    namespace: str = Field("otel", min_length=1)
    catalog_name: str = Field("otlp2parquet", min_length=1, description="part of a SQL catalog's keys")
    catalog_uri: str | None = Field(None, description="default: sqlite:///<base_path>/catalog.db")
    warehouse: str | None = Field(None, description="default: <base_path>/warehouse")
    catalog_properties: dict[str, str] = Field(default_factory=dict, description="extra pyiceberg properties")
    # AWS S3 Tables: the table bucket's ARN (region, account and bucket come from it); SigV4, AWS credential chain.
    s3_tables_arn: str | None = None
    # Cloudflare R2 Data Catalog: account and bucket; the token only from OTLP2PARQUET_R2_API_TOKEN.
    r2_account_id: str | None = None
    r2_bucket_name: str | None = None
    r2_api_token: str | None = Field(None, description="secret: environment only")
    # A generic Iceberg REST catalog (uri above): bearer token or OAuth2 client credentials, headers, CA bundle.
    rest_token: str | None = Field(None, description="secret: environment only")
    rest_credential: str | None = Field(None, description="OAuth2 'client_id:client_secret'; environment only")
    rest_oauth2_server_uri: str | None = None
    rest_scope: str | None = None
    rest_headers: dict[str, str] = Field(default_factory=dict)
    rest_ca_bundle: str | None = None
    # AWS Glue Data Catalog.
    glue_region: str | None = None
    # Storage (warehouse and plain Parquet): S3-compatible endpoint override, region, path-style, static keys.
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_path_style: bool = False
    s3_access_key_id: str | None = Field(None, description="secret: environment only")
    s3_secret_access_key: str | None = Field(None, description="secret: environment only")
    warn_on_catalog_failure: bool = Field(False, description="log a failed commit as a warning, not an error")
    partition_by_service: bool = Field(False, description="add identity(ServiceName) to the partition spec")
    commit_max_attempts: int = Field(6, gt=0)
    commit_max_elapsed_s: float = Field(120.0, gt=0)
    commit_interval_s: float | None = Field(
        None, ge=0, description="at most one commit per table this often (default: buffer.max_age_s); row and byte "
                                "flushes in between write data files that the next commit appends together")


class WalSettings(_Section):
    enabled: bool = Field(True, description="append each accepted request to a write-ahead log before acking")
    dir: str | None = Field(None, description="spool directory; default: <base_path>/wal")
    fsync: Literal["always", "interval", "off"] = Field("always", description="when appends reach the disk")
    fsync_interval_ms: int = Field(100, gt=0, description="with fsync = 'interval': the loss window on a crash")
    segment_bytes: int = Field(64 * MiB, gt=0, description="roll to a new segment file at this size")


def _duration(value: str) -> str:
    if value != "off" and (not value or value[-1] not in "smhd" or not value[:-1].replace(".", "", 1).isdigit()):
        raise ValueError("expected a duration like 90s, 15m, 12h or 7d, or 'off'")
    return value


class MaintenanceSettings(_Section):
    enabled: bool = Field(True, description="run table maintenance inside serve, every interval_s")
    interval_s: float = Field(3600.0, gt=0)
    expire_older_than: str = Field("1h", description="expire snapshots older than this ('off' to keep all)")
    keep_last: int = Field(50, ge=1, description="always keep this many newest snapshots")
    orphans_older_than: str = Field("3d", description="remove unreferenced files older than this ('off')")
    retention: dict[str, str] = Field(default_factory=dict, description="table -> delete rows older than this")
    compact_after: str = Field("2d", description="compact partitions older than this, idle for as long ('off')")
    target_file_bytes: int = Field(128 * MiB, gt=0, description="compaction's target data file size")

    _durations = field_validator("expire_older_than", "orphans_older_than", "compact_after")(
        lambda value: _duration(value))

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: dict[str, str]) -> dict[str, str]:
        for age in value.values():
            _duration(age)
        return value


class TelemetrySettings(_Section):
    enabled: bool = Field(True, description="serve /metrics, /healthz and /ready over HTTP")
    listen: str = Field("127.0.0.1:9464", description="HOST:PORT of the HTTP endpoints")

    _listen = field_validator("listen")(lambda value: _host_port(value))


class LoggingSettings(_Section):
    format: Literal["json", "text"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    server: ServerSettings = ServerSettings()
    buffer: BufferSettings = BufferSettings()
    writer: WriterSettings = WriterSettings()
    iceberg: IcebergSettings = IcebergSettings()
    wal: WalSettings = WalSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    logging: LoggingSettings = LoggingSettings()

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init kwargs carry the TOML file merged with env and flags (see load_settings), already in order.
        return (init_settings,)

    def writer_id(self) -> str:
        return self.writer.writer_id or socket.gethostname()

    def configured_catalogs(self) -> list[str]:
        """The catalogs that are set, in order of precedence (docs/catalogs.md); empty means the embedded one."""
        ice = self.iceberg
        return [kind for kind, present in (
            ("s3tables", ice.s3_tables_arn), ("r2", ice.r2_account_id or ice.r2_bucket_name),
            ("uri", ice.catalog_uri), ("glue", ice.glue_region)) if present]

    def commit_interval_s(self) -> float:
        """Plain Parquet files are final when written, so they have nothing to wait for."""
        if not self.iceberg.enabled:
            return 0.0
        interval = self.iceberg.commit_interval_s
        return self.buffer.max_age_s if interval is None else interval

    def wal_dir(self) -> pathlib.Path:
        return pathlib.Path(self.wal.dir) if self.wal.dir else pathlib.Path(self.writer.base_path) / "wal"

    def catalog_uri(self) -> str:
        if self.iceberg.catalog_uri:
            return self.iceberg.catalog_uri
        return f"sqlite:///{pathlib.Path(self.writer.base_path).resolve() / 'catalog.db'}"

    def warehouse(self) -> str:
        if self.iceberg.warehouse:
            if "://" in self.iceberg.warehouse:
                return self.iceberg.warehouse
            return pathlib.Path(self.iceberg.warehouse).resolve().as_uri()
        if "://" in self.writer.base_path:
            return f"{self.writer.base_path.rstrip('/')}/warehouse"
        return (pathlib.Path(self.writer.base_path).resolve() / "warehouse").as_uri()


def _env_layer(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    layer: dict[str, dict[str, Any]] = {}
    sections = set(Settings.model_fields)
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX):]
        if rest in FLAT_ENV:
            section, key = FLAT_ENV[rest]
        elif "__" in rest and rest.split("__", 1)[0].lower() in sections:
            section, key = (part.lower() for part in rest.split("__", 1))
        else:
            raise ConfigError(f"unknown environment variable {name}")
        if value.lstrip().startswith("{"):  # a table (e.g. rest_headers) as a JSON object
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{name}: not a JSON object ({exc.msg})") from None
        layer.setdefault(section, {})[key] = value
    return layer


def _merge(base: dict[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in layer.items():
        if isinstance(values, Mapping) and isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], **values}
        else:
            merged[section] = values
    return merged


def _describe(error: ValidationError) -> str:
    problems = []
    for e in error.errors():
        key = ".".join(str(p) for p in e["loc"])
        shown = e["type"] != "extra_forbidden" and "input" in e and not _is_secret(key)
        given = f" (got {e['input']!r})" if shown else ""
        text = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        problems.append(f"{key}: {text}{given}")
    return "invalid configuration: " + "; ".join(problems)


def load_settings(config_file: str | os.PathLike[str] | None = None,
                  overrides: Mapping[str, Mapping[str, Any]] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults < TOML file < environment < `overrides` (command-line flags). Raises ConfigError."""
    data: dict[str, Any] = {}
    if config_file is not None:
        try:
            data = tomllib.loads(pathlib.Path(config_file).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from exc
        for section, key in ENV_ONLY:
            if key in data.get(section, {}):
                raise ConfigError(f"{section}.{key} is a secret: set OTLP2PARQUET_{key.upper()} in the environment, "
                                  "not in the config file")
    data = _merge(data, _env_layer(os.environ if environ is None else environ))
    data = _merge(data, overrides or {})
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    _check_remote_base_path(settings)
    return settings


def _check_remote_base_path(settings: Settings) -> None:
    """An object-store base_path holds Parquet files and the warehouse, never the WAL or a SQLite catalog."""
    base = settings.writer.base_path
    if "://" not in base:
        return
    if settings.wal.enabled and not settings.wal.dir:
        raise ConfigError(f"writer.base_path is {base}: set wal.dir (OTLP2PARQUET_WAL_DIR) to a local directory "
                          "for the write-ahead log")
    if settings.iceberg.enabled and not settings.configured_catalogs():
        raise ConfigError(f"writer.base_path is {base}: the embedded SQLite catalog needs a local file; set "
                          "iceberg.catalog_uri or another catalog (or iceberg.enabled = false for plain Parquet)")


def _is_secret(key: str) -> bool:
    return any(word in key.lower() for word in SECRET_WORDS)


def redact_uri(uri: str) -> str:
    scheme, sep, rest = uri.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if sep and at and ":" in userinfo:
        return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
    return uri


def redacted(settings: Settings) -> dict[str, dict[str, Any]]:
    """The effective settings as plain data, secrets replaced by '***'."""
    data = settings.model_dump()
    data["iceberg"]["catalog_uri"] = redact_uri(settings.catalog_uri())
    data["iceberg"]["warehouse"] = settings.warehouse()
    data["iceberg"]["catalog_properties"] = {
        k: "***" if _is_secret(k) else v for k, v in settings.iceberg.catalog_properties.items()}
    data["iceberg"]["rest_headers"] = {k: "***" if _is_secret(k) or k.lower() == "authorization" else v
                                       for k, v in settings.iceberg.rest_headers.items()}
    for section, key in ENV_ONLY:
        if data[section][key] is not None:
            data[section][key] = "***"
    return data


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_toml(data: Mapping[str, Mapping[str, Any]]) -> str:
    """Render settings as TOML that `--config` reads back (our settings are flat sections of scalars)."""
    out: list[str] = []
    for section, values in data.items():
        out.append(f"[{section}]")
        tables = {k: v for k, v in values.items() if isinstance(v, dict)}
        out += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None and k not in tables]
        for key, table in tables.items():
            out.append(f"{key} = {{ " + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in table.items()) + " }")
        out.append("")
    return "\n".join(out)
