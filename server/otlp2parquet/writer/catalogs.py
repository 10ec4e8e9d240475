"""Build the pyiceberg catalog from our settings, with explicit properties.

A user's `~/.pyiceberg.yaml` or `PYICEBERG_*` variables are deliberately not consulted: the sidecar's
configuration is its own TOML file and `OTLP2PARQUET_*` variables, resolved once.

Which catalog, when several are configured (first match wins, the others are ignored with a warning):
1. `s3_tables_arn`: AWS S3 Tables (REST, SigV4 with signing name `s3tables`);
2. `r2_account_id`: Cloudflare R2 Data Catalog (REST, bearer token);
3. `catalog_uri`: `http(s)://` a generic REST catalog, `sqlite:`/`postgresql` a SQL catalog;
4. `glue_region`: the AWS Glue Data Catalog;
5. none of them: the embedded SQLite catalog under `base_path`.
"""

from __future__ import annotations

import logging
import pathlib
import re
import time
from typing import Any

import pyarrow.fs as pafs
from pyiceberg.catalog import Catalog
from pyiceberg.io import FileIO

from otlp2parquet.config import Settings, redact_uri
from otlp2parquet.errors import CatalogError, ConfigError
from otlp2parquet.writer.durable import IO_IMPL

log = logging.getLogger(__name__)
S3_TABLES_ARN = re.compile(
    r"^arn:aws[a-z-]*:s3tables:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):bucket/(?P<bucket>[a-z0-9][a-z0-9-]{1,61}[a-z0-9])$")


def catalog_kind(settings: Settings) -> str:
    ice = settings.iceberg
    configured = settings.configured_catalogs()
    if len(configured) > 1:
        log.warning("several catalogs configured; using the first by precedence",
                    extra={"configured": configured, "using": configured[0]})
    kind = configured[0] if configured else "embedded"
    if kind == "uri":
        uri = ice.catalog_uri or ""
        if uri.startswith(("http://", "https://")):
            return "rest"
        if uri.startswith(("sqlite:", "postgresql")):
            return "sql"
        raise ConfigError(f"iceberg.catalog_uri: unsupported catalog URI scheme in {uri.split(':', 1)[0]!r} "
                          "(expected http(s)://, sqlite: or postgresql)")
    return kind


def storage_properties(settings: Settings) -> dict[str, str]:
    """pyiceberg FileIO properties for S3 and S3-compatible stores (MinIO, R2)."""
    ice = settings.iceberg
    props = {"s3.endpoint": ice.s3_endpoint, "s3.region": ice.s3_region, "s3.access-key-id": ice.s3_access_key_id,
             "s3.secret-access-key": ice.s3_secret_access_key}
    if ice.s3_path_style:
        props["s3.force-virtual-addressing"] = "false"
    return {k: v for k, v in props.items() if v}


def filesystem(io: FileIO, location: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem pyiceberg's FileIO uses for `location` (its endpoint, keys, region), and the path
    on it; other FileIO implementations fall back to pyarrow's own resolution of the URI."""
    from pyiceberg.io.pyarrow import PyArrowFileIO

    if isinstance(io, PyArrowFileIO):
        scheme, netloc, path = PyArrowFileIO.parse_location(location, io.properties)
        return io.fs_by_scheme(scheme, netloc), path
    return pafs.FileSystem.from_uri(location)


def catalog_properties(settings: Settings) -> dict[str, Any]:
    """The exact properties handed to pyiceberg for the configured catalog (`type` included)."""
    ice = settings.iceberg
    kind = catalog_kind(settings)
    props: dict[str, Any]
    if kind == "s3tables":
        match = S3_TABLES_ARN.match(ice.s3_tables_arn or "")
        if match is None:
            raise ConfigError("iceberg.s3_tables_arn: expected arn:aws:s3tables:<region>:<12-digit account>:"
                              f"bucket/<table bucket>, got {ice.s3_tables_arn!r}")
        region = match["region"]
        props = {"type": "rest", "uri": f"https://s3tables.{region}.amazonaws.com/iceberg",
                 "warehouse": ice.s3_tables_arn, "rest.sigv4-enabled": "true", "rest.signing-name": "s3tables",
                 "rest.signing-region": region}
    elif kind == "r2":
        missing = [name for name, value in (("iceberg.r2_account_id", ice.r2_account_id),
                                            ("iceberg.r2_bucket_name", ice.r2_bucket_name),
                                            ("OTLP2PARQUET_R2_API_TOKEN", ice.r2_api_token)) if not value]
        if missing:
            raise ConfigError(f"the R2 Data Catalog needs {', '.join(missing)}")
        props = {"type": "rest",
                 "uri": ice.catalog_uri or f"https://catalog.cloudflarestorage.com/{ice.r2_account_id}/{ice.r2_bucket_name}",
                 "warehouse": ice.warehouse or f"{ice.r2_account_id}_{ice.r2_bucket_name}", "token": ice.r2_api_token}
    elif kind == "rest":
        props = {"type": "rest", "uri": ice.catalog_uri}
        if ice.warehouse:
            props["warehouse"] = ice.warehouse
        if ice.rest_token and ice.rest_credential:
            raise ConfigError("set either OTLP2PARQUET_REST_TOKEN or OTLP2PARQUET_REST_CREDENTIAL, not both")
        if ice.rest_token:
            props["token"] = ice.rest_token
        if ice.rest_credential:
            if ":" not in ice.rest_credential:
                raise ConfigError("OTLP2PARQUET_REST_CREDENTIAL: expected client_id:client_secret")
            props["credential"] = ice.rest_credential
            if ice.rest_oauth2_server_uri:
                props["oauth2-server-uri"] = ice.rest_oauth2_server_uri
            if ice.rest_scope:
                props["scope"] = ice.rest_scope
        props.update({f"header.{name}": value for name, value in ice.rest_headers.items()})
        if ice.rest_ca_bundle:
            props["ssl"] = {"cabundle": ice.rest_ca_bundle}
    elif kind == "glue":
        props = {"type": "glue", "glue.region": ice.glue_region, "warehouse": settings.warehouse()}
    else:  # sql: the embedded SQLite default or a catalog_uri
        props = {"type": "sql", "uri": settings.catalog_uri(), "warehouse": settings.warehouse()}
    if props.get("warehouse", "").startswith("file:"):  # writer/durable.py: on disk before the catalog says so
        props["py-io-impl"] = IO_IMPL
    return {**props, **storage_properties(settings), **ice.catalog_properties}


def build_catalog(settings: Settings) -> Catalog:
    """Open the configured catalog; failing to reach it or being refused is one clear CatalogError."""
    props = catalog_properties(settings)
    try:
        return _open_catalog(settings.iceberg.catalog_name, props)
    except ConfigError:
        raise
    except Exception as exc:
        where = redact_uri(str(props.get("uri", "")))
        raise CatalogError(f"cannot open the {catalog_kind(settings)} catalog at {where}: "
                           f"{type(exc).__name__}: {exc}") from exc


def _open_catalog(name: str, properties: dict[str, Any]) -> Catalog:
    props = dict(properties)
    kind = props.pop("type")
    if kind == "sql":
        from pyiceberg.catalog.sql import SqlCatalog

        uri = props["uri"]
        if uri.startswith("sqlite:///") and uri != "sqlite:///:memory:":
            pathlib.Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        if props["warehouse"].startswith("file://"):
            pathlib.Path(props["warehouse"].removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        from sqlalchemy.exc import DBAPIError

        for attempt in range(3):
            try:
                return SqlCatalog(name, **props)
            except ModuleNotFoundError as exc:  # e.g. psycopg2 for PostgreSQL
                raise ConfigError(f"the SQL catalog needs {exc.name}: pip install 'pyiceberg[sql-postgres]'") from None
            except DBAPIError:
                # Sidecars starting together race to create the catalog's own tables; the loser finds them there.
                if attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))
    if kind == "rest":
        from pyiceberg.catalog.rest import RestCatalog

        return RestCatalog(name, **props)
    if kind == "glue":
        try:
            from pyiceberg.catalog.glue import GlueCatalog
        except ImportError:
            raise ConfigError("the Glue catalog needs boto3: pip install 'pyiceberg[glue]'") from None
        return GlueCatalog(name, **props)
    raise ConfigError(f"unknown catalog type {kind!r}")
