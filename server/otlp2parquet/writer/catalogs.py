"""Build the pyiceberg catalog from our settings, with explicit properties.

A user's `~/.pyiceberg.yaml` or `PYICEBERG_*` variables are deliberately not consulted: the sidecar's
configuration is its own TOML file and `OTLP2PARQUET_*` variables, resolved once.
"""

from __future__ import annotations

import pathlib

from pyiceberg.catalog import Catalog

from otlp2parquet.config import Settings
from otlp2parquet.errors import ConfigError


def catalog_properties(settings: Settings) -> dict[str, str]:
    return {"uri": settings.catalog_uri(), "warehouse": settings.warehouse(),
            **settings.iceberg.catalog_properties}


def build_catalog(settings: Settings) -> Catalog:
    props = catalog_properties(settings)
    uri = props["uri"]
    name = settings.iceberg.catalog_name
    if uri.startswith("sqlite:") or uri.startswith("postgresql"):
        from pyiceberg.catalog.sql import SqlCatalog

        if uri.startswith("sqlite:///") and uri != "sqlite:///:memory:":
            pathlib.Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        if props["warehouse"].startswith("file://"):
            pathlib.Path(props["warehouse"].removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        return SqlCatalog(name, **props)
    if uri.startswith("http://") or uri.startswith("https://"):
        from pyiceberg.catalog.rest import RestCatalog

        return RestCatalog(name, **props)
    raise ConfigError(f"iceberg.catalog_uri: unsupported catalog URI {uri!r} (expected sqlite:, postgresql or http)")
