"""The table contract: seven tables, one definition, Arrow and Iceberg schemas derived from it."""

from __future__ import annotations

from functools import cache

import pyarrow as pa
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.sorting import NullOrder, SortDirection, SortField, SortOrder
from pyiceberg.transforms import DayTransform, IdentityTransform

from otlp2parquet.schemas.tables import SCHEMA_VERSION, TABLES, TableSpec
from otlp2parquet.schemas.types import arrow_schema as _arrow_schema
from otlp2parquet.schemas.types import arrow_schema_with_field_ids
from otlp2parquet.schemas.types import iceberg_schema as _iceberg_schema

__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "TableSpec",
    "arrow_schema",
    "arrow_schema_with_ids",
    "iceberg_partition_spec",
    "iceberg_schema",
    "iceberg_sort_order",
    "table_properties",
]

PARTITION_FIELD_ID_START = 1000


@cache
def arrow_schema(table: str) -> pa.Schema:
    return _arrow_schema(TABLES[table].fields)


@cache
def iceberg_schema(table: str) -> Schema:
    return _iceberg_schema(TABLES[table].fields)


@cache
def arrow_schema_with_ids(table: str) -> pa.Schema:
    """The Arrow schema with Iceberg field IDs attached, for data files an Iceberg table will reference."""
    return arrow_schema_with_field_ids(arrow_schema(table), iceberg_schema(table))


def _source_id(table: str, column: str) -> int:
    return iceberg_schema(table).find_field(column).field_id


def iceberg_partition_spec(table: str, by_service: bool = False) -> PartitionSpec:
    """`day(time)`, plus `identity(ServiceName)` when asked: that multiplies small files with many services."""
    spec = TABLES[table]
    fields = [PartitionField(_source_id(table, spec.time_column), PARTITION_FIELD_ID_START, DayTransform(),
                             f"{spec.time_column}_day")]
    if by_service:
        fields.append(PartitionField(_source_id(table, "ServiceName"), PARTITION_FIELD_ID_START + 1,
                                     IdentityTransform(), "ServiceName"))
    return PartitionSpec(*fields)


def iceberg_sort_order(table: str) -> SortOrder:
    return SortOrder(*(
        SortField(source_id=_source_id(table, col), transform=IdentityTransform(),
                  direction=SortDirection.ASC, null_order=NullOrder.NULLS_FIRST)
        for col in TABLES[table].sort_columns
    ))


def table_properties() -> dict[str, str]:
    return {
        "write.parquet.compression-codec": "zstd",
        "write.metadata.delete-after-commit.enabled": "true",
        "write.metadata.previous-versions-max": "100",
        "otlp2parquet.schema-version": str(SCHEMA_VERSION),
    }
