"""A tiny column type algebra from which both the Arrow and the Iceberg schemas are derived.

Keeping one definition is the point: the Rust predecessor kept parallel Arrow and Iceberg schemas and they
drifted (uint32 vs int64, binary vs fixed). Here the Iceberg field IDs are assigned the way pyiceberg assigns
them on `create_table`, so the IDs written in our definition are the IDs the catalog stores.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, NamedTuple

import pyarrow as pa
from pyiceberg import types as it
from pyiceberg.schema import Schema

PrimitiveName = Literal["string", "int", "long", "double", "boolean", "timestamptz"]


@dataclass(frozen=True)
class Primitive:
    name: PrimitiveName


@dataclass(frozen=True)
class ListOf:
    element: ColumnType
    element_required: bool = True


@dataclass(frozen=True)
class MapOf:
    """Always `map<string, string>` here: attribute maps after ClickHouse stringification."""

    value_required: bool = True


@dataclass(frozen=True)
class StructOf:
    fields: tuple[Field, ...]


ColumnType = Primitive | ListOf | MapOf | StructOf


@dataclass(frozen=True)
class Field:
    """A column (or a struct member): name, type, nullability and the documentation that goes to schema.md."""

    name: str
    type: ColumnType
    required: bool = True
    source: str = ""
    example: str = ""
    doc: str = ""
    unique: bool = False
    """Values almost never repeat (ids, durations): Parquet stores them without a dictionary."""


STRING = Primitive("string")
INT = Primitive("int")
LONG = Primitive("long")
DOUBLE = Primitive("double")
BOOLEAN = Primitive("boolean")
TIMESTAMPTZ = Primitive("timestamptz")
ATTRIBUTES = MapOf()

_ARROW_PRIMITIVES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int32(),
    "long": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}

_ICEBERG_PRIMITIVES: dict[str, it.PrimitiveType] = {
    "string": it.StringType(),
    "int": it.IntegerType(),
    "long": it.LongType(),
    "double": it.DoubleType(),
    "boolean": it.BooleanType(),
    "timestamptz": it.TimestamptzType(),
}


def arrow_type(t: ColumnType) -> pa.DataType:
    if isinstance(t, Primitive):
        return _ARROW_PRIMITIVES[t.name]
    if isinstance(t, ListOf):
        return pa.list_(pa.field("element", arrow_type(t.element), nullable=not t.element_required))
    if isinstance(t, MapOf):
        return pa.map_(
            pa.field("key", pa.string(), nullable=False),
            pa.field("value", pa.string(), nullable=not t.value_required),
        )
    return pa.struct([arrow_field(f) for f in t.fields])


def arrow_field(f: Field) -> pa.Field:
    return pa.field(f.name, arrow_type(f.type), nullable=not f.required)


def arrow_schema(fields: tuple[Field, ...]) -> pa.Schema:
    return pa.schema([arrow_field(f) for f in fields])


class _Ids:
    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last += 1
        return self.last


def _iceberg_type(t: ColumnType, ids: _Ids) -> it.IcebergType:
    """Assign IDs like pyiceberg's fresh-ID visitor: a struct's own fields first, then their children."""
    if isinstance(t, Primitive):
        return _ICEBERG_PRIMITIVES[t.name]
    if isinstance(t, ListOf):
        element_id = ids.next()
        return it.ListType(element_id, _iceberg_type(t.element, ids), element_required=t.element_required)
    if isinstance(t, MapOf):
        key_id, value_id = ids.next(), ids.next()
        return it.MapType(key_id, it.StringType(), value_id, it.StringType(), value_required=t.value_required)
    return it.StructType(*_iceberg_fields(t.fields, ids))


def _iceberg_fields(fields: tuple[Field, ...], ids: _Ids) -> list[it.NestedField]:
    field_ids = [ids.next() for _ in fields]
    return [
        it.NestedField(fid, f.name, _iceberg_type(f.type, ids), required=f.required, doc=f.doc or None)
        for fid, f in zip(field_ids, fields, strict=True)
    ]


def iceberg_schema(fields: tuple[Field, ...]) -> Schema:
    return Schema(*_iceberg_fields(fields, _Ids()))


_FIELD_ID = b"PARQUET:field_id"


def _with_ids(arrow: pa.DataType, iceberg: it.IcebergType) -> pa.DataType:
    if isinstance(iceberg, it.StructType):
        return pa.struct([_field_with_id(arrow.field(i), f) for i, f in enumerate(iceberg.fields)])
    if isinstance(iceberg, it.ListType):
        element = arrow.value_field
        return pa.list_(element.with_type(_with_ids(element.type, iceberg.element_type))
                        .with_metadata({_FIELD_ID: str(iceberg.element_id).encode()}))
    if isinstance(iceberg, it.MapType):
        key = arrow.key_field.with_metadata({_FIELD_ID: str(iceberg.key_id).encode()})
        value = arrow.item_field.with_metadata({_FIELD_ID: str(iceberg.value_id).encode()})
        return pa.map_(key, value)
    return arrow


def _field_with_id(arrow: pa.Field, iceberg: it.NestedField) -> pa.Field:
    return arrow.with_type(_with_ids(arrow.type, iceberg.field_type)).with_metadata(
        {_FIELD_ID: str(iceberg.field_id).encode()})


def arrow_schema_with_field_ids(arrow: pa.Schema, iceberg: Schema) -> pa.Schema:
    """`arrow` with each field's Iceberg ID as Parquet field-id metadata, so readers match columns by ID."""
    return pa.schema([_field_with_id(arrow.field(f.name), f) for f in iceberg.fields])


class Leaf(NamedTuple):
    """One Parquet leaf column. `repeated`: it sits inside a list or a map, so a row holds any number of it."""

    path: str  # as pyarrow names it
    kind: PrimitiveName
    unique: bool
    repeated: bool


def parquet_leaves(fields: tuple[Field, ...]) -> Iterator[Leaf]:
    """Each Parquet leaf column of a table."""
    for f in fields:
        yield from _leaves(f.name, f.type, f.unique, False)


def _leaves(path: str, t: ColumnType, unique: bool, repeated: bool) -> Iterator[Leaf]:
    if isinstance(t, Primitive):
        yield Leaf(path, t.name, unique, repeated)
    elif isinstance(t, ListOf):
        yield from _leaves(path + ".list.element", t.element, unique, True)
    elif isinstance(t, MapOf):
        yield Leaf(path + ".key_value.key", "string", False, True)
        yield Leaf(path + ".key_value.value", "string", False, True)
    else:
        for f in t.fields:
            yield from _leaves(f"{path}.{f.name}", f.type, f.unique, repeated)
