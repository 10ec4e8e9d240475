"""Writers: one per table, chosen by configuration: Iceberg (default) or plain Parquet files."""

from __future__ import annotations

from typing import TYPE_CHECKING

from otlp2parquet.config import Settings
from otlp2parquet.errors import CatalogError
from otlp2parquet.telemetry import Telemetry
from otlp2parquet.writer.base import Staged, TableWriter, WriteResult, WriterFactory
from otlp2parquet.writer.parquet import ParquetWriter

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

__all__ = ["Staged", "TableWriter", "WriteResult", "WriterFactory", "build_writer_factory"]


def build_writer_factory(settings: Settings, telemetry: Telemetry | None = None) -> WriterFactory:
    """A factory of per-table writers. For Iceberg, the catalog is built (and the namespace ensured) here."""
    writer_id = settings.writer_id()
    if not settings.iceberg.enabled:
        from otlp2parquet.writer.catalogs import storage_properties

        storage = storage_properties(settings)
        return lambda table: ParquetWriter(table, settings.writer, writer_id, storage)

    from otlp2parquet.writer.catalogs import build_catalog
    from otlp2parquet.writer.iceberg import IcebergWriter

    catalog = build_catalog(settings)
    namespace = settings.iceberg.namespace
    try:
        catalog.create_namespace_if_not_exists(namespace)
    except Exception as exc:
        # Another sidecar may create it between the check and the create; a SQL catalog then raises its
        # driver's integrity error rather than NamespaceAlreadyExistsError.
        if not _namespace_exists(catalog, namespace):
            raise CatalogError(f"cannot create the namespace {namespace!r}: {type(exc).__name__}: {exc}") from exc
    return lambda table: IcebergWriter(table, catalog, settings, writer_id, telemetry)


def _namespace_exists(catalog: Catalog, namespace: str) -> bool:
    try:
        return catalog.namespace_exists(namespace)
    except Exception:
        return False
