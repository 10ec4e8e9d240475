"""Writers: one per table, chosen by configuration: Iceberg (default) or plain Parquet files."""

from __future__ import annotations

from otlp2parquet.config import Settings
from otlp2parquet.telemetry import Telemetry
from otlp2parquet.writer.base import TableWriter, WriteResult, WriterFactory
from otlp2parquet.writer.parquet import ParquetWriter

__all__ = ["TableWriter", "WriteResult", "WriterFactory", "build_writer_factory"]


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
    try:
        catalog.create_namespace_if_not_exists(settings.iceberg.namespace)
    except Exception:
        # Another sidecar may create it between the check and the create; a SQL catalog then raises its
        # driver's integrity error rather than NamespaceAlreadyExistsError.
        if not catalog.namespace_exists(settings.iceberg.namespace):
            raise
    return lambda table: IcebergWriter(table, catalog, settings, writer_id, telemetry)
