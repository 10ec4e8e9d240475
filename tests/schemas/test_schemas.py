"""The Arrow and Iceberg schemas come from one definition and agree field by field, in code and in a catalog."""

from __future__ import annotations

import pathlib

import pyarrow as pa
import pytest
from pyiceberg import types as it
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.transforms import DayTransform, IdentityTransform

from otlp2parquet.schemas import (
    TABLES,
    arrow_schema,
    iceberg_partition_spec,
    iceberg_schema,
    iceberg_sort_order,
    table_properties,
)
from otlp2parquet.schemas.doc import render

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEED_TABLE_NAMES = ["logs", "traces", "metrics_gauge", "metrics_sum", "metrics_histogram",
                    "metrics_exponential_histogram", "metrics_summary"]

ARROW_FOR_ICEBERG = {
    it.StringType(): pa.string(),
    it.IntegerType(): pa.int32(),
    it.LongType(): pa.int64(),
    it.DoubleType(): pa.float64(),
    it.BooleanType(): pa.bool_(),
    it.TimestamptzType(): pa.timestamp("us", tz="UTC"),
}


def _assert_agree(arrow: pa.DataType, iceberg: it.IcebergType, path: str) -> None:
    """Walk both types together: same shape, names, nullability and primitive types."""
    if isinstance(iceberg, it.StructType):
        assert pa.types.is_struct(arrow), path
        assert [arrow.field(i).name for i in range(arrow.num_fields)] == [f.name for f in iceberg.fields], path
        for i, f in enumerate(iceberg.fields):
            assert arrow.field(i).nullable == (not f.required), f"{path}.{f.name} nullability"
            _assert_agree(arrow.field(i).type, f.field_type, f"{path}.{f.name}")
    elif isinstance(iceberg, it.ListType):
        assert pa.types.is_list(arrow), path
        assert arrow.value_field.nullable == (not iceberg.element_required), f"{path}[] nullability"
        _assert_agree(arrow.value_type, iceberg.element_type, f"{path}[]")
    elif isinstance(iceberg, it.MapType):
        assert pa.types.is_map(arrow), path
        assert arrow.item_field.nullable == (not iceberg.value_required), f"{path}{{}} nullability"
        _assert_agree(arrow.key_type, iceberg.key_type, f"{path}.key")
        _assert_agree(arrow.item_type, iceberg.value_type, f"{path}.value")
    else:
        assert arrow == ARROW_FOR_ICEBERG[iceberg], f"{path}: {arrow} vs {iceberg}"


def test_the_seven_tables_have_the_seed_names() -> None:
    assert list(TABLES) == SEED_TABLE_NAMES


@pytest.mark.parametrize("table", SEED_TABLE_NAMES)
def test_arrow_and_iceberg_schemas_agree_field_by_field(table: str) -> None:
    arrow, iceberg = arrow_schema(table), iceberg_schema(table)
    _assert_agree(pa.struct(list(arrow)), iceberg.as_struct(), table)


@pytest.mark.parametrize("table", SEED_TABLE_NAMES)
def test_no_unsigned_or_nanosecond_types_reach_iceberg(table: str) -> None:
    """pyiceberg maps uint32 to a 32-bit int and refuses ns timestamps on v2: neither may appear."""
    def walk(t: pa.DataType) -> list[pa.DataType]:
        children = [t.field(i).type for i in range(t.num_fields)] if t.num_fields else []
        return [t] + [x for c in children for x in walk(c)]
    for t in walk(pa.struct(list(arrow_schema(table)))):
        assert not pa.types.is_unsigned_integer(t), t
        assert not (pa.types.is_timestamp(t) and t.unit != "us"), t


def test_a_catalog_stores_exactly_our_schema_ids_spec_and_sort_order(tmp_path: pathlib.Path) -> None:
    catalog = SqlCatalog("otel", uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=f"file://{tmp_path}/wh")
    catalog.create_namespace("otel")
    for table in SEED_TABLE_NAMES:
        created = catalog.create_table(f"otel.{table}", schema=iceberg_schema(table),
                                       partition_spec=iceberg_partition_spec(table),
                                       sort_order=iceberg_sort_order(table), properties=table_properties())
        assert created.schema() == iceberg_schema(table), table  # includes every field ID
        assert created.spec() == iceberg_partition_spec(table)
        (day,) = created.spec().fields
        assert isinstance(day.transform, DayTransform)
        assert created.schema().find_column_name(day.source_id) == TABLES[table].time_column
        sort_names = [created.schema().find_column_name(f.source_id) for f in created.sort_order().fields]
        assert sort_names == list(TABLES[table].sort_columns)
        assert created.properties["write.parquet.compression-codec"] == "zstd"


def test_service_partitioning_is_an_option() -> None:
    _day, service = iceberg_partition_spec("traces", by_service=True).fields
    assert isinstance(service.transform, IdentityTransform)
    assert iceberg_schema("traces").find_column_name(service.source_id) == "ServiceName"


def test_docs_schema_md_is_generated_from_the_definition() -> None:
    committed = (ROOT / "docs" / "schema.md").read_text()
    assert committed == render(), "run: python -m otlp2parquet.schemas.doc > docs/schema.md"


def test_docs_list_every_column_of_every_table() -> None:
    doc = render()
    for table in SEED_TABLE_NAMES:
        section = doc.split(f"## `{table}`")[1].split("\n## ")[0]
        for field in arrow_schema(table):
            assert f"| `{field.name}` |" in section, f"{table}.{field.name}"
