"""Render docs/schema.md from the table definitions, so the documented contract cannot drift from the code.

Regenerate with `python -m otlp2parquet.schemas.doc > docs/schema.md`; a test fails when they differ.
"""

from __future__ import annotations

from pyiceberg.schema import Schema

from otlp2parquet.schemas import (
    SCHEMA_VERSION,
    TABLES,
    iceberg_partition_spec,
    iceberg_schema,
    table_properties,
)
from otlp2parquet.schemas.types import ColumnType, Field, ListOf, MapOf, Primitive, StructOf

INTRO = f"""# The table contract (schema version {SCHEMA_VERSION})

Seven tables, one row per span, log record or metric data point. Names are the seed design's; with
`table_prefix = "otel_"` they become the ClickHouse exporter's (`otel_logs`, `otel_traces`, ...). Column names
and meanings follow the ClickHouse exporter; columns it lacks (marked "Not in ClickHouse") keep every other
OTLP field.

This file is generated from `server/otlp2parquet/schemas/tables.py`
(`python -m otlp2parquet.schemas.doc > docs/schema.md`); a test fails when the two differ.

## Conventions

- **Timestamps** are Iceberg `timestamptz` (Arrow `timestamp[us, tz=UTC]`): format v2 has microseconds, so the
  sub-microsecond part of OTLP's nanosecond times is truncated. `Duration` keeps exact nanoseconds.
  A time of 0 (unset) is stored as 1970-01-01, except a log `Timestamp`, which falls back to the observed time.
- **Ids** (`TraceId`, `SpanId`, link and exemplar ids) are lowercase hex strings; an empty or all-zero id is
  `''` everywhere, so `logs` and `traces` join on `TraceId`. A record whose id has another length than 0 or
  16 (trace) / 8 (span) bytes is rejected and reported through OTLP `partial_success`.
- **Attributes** are `map<string, string>`, each value stringified as the ClickHouse exporter does: strings as
  they are, `true`/`false`, integers in decimal, doubles in ES6 form (`3`, `0.5`, `1e-7`, `1e+21`), NaN and
  infinities as `json: unsupported value: NaN` (`+Inf`, `-Inf`), bytes as padded base64, arrays and kvlists as
  Go-style JSON (sorted keys, `<>&` escaped; `''` if a nested double is NaN or infinite), an empty value as `''`.
  The value's type is not kept (as in ClickHouse). Duplicate keys are kept as sent. A value nested deeper than
  the protobuf decoder's limit (about 100 levels) is stored as `''`; its record is kept. Log `Body` follows the same
  rules. Invalid UTF-8 is replaced with U+FFFD and reported as a `partial_success` warning.
- **Unsigned counters** (`uint32`, `uint64`) are `long`; Iceberg has no unsigned types.
- **Optional OTLP fields** (histogram `Sum`/`Min`/`Max`, number `Value`, `IntValue`) are null when unset,
  never 0. NaN and ±Inf values are stored as they are.
- **Enums**: `SpanKind` and `StatusCode` use the current ClickHouse exporter's names (`Server`, `Error`);
  unknown numbers are stored as their decimal text. `AggregationTemporality` keeps the OTLP number
  (0 unspecified, 1 delta, 2 cumulative).
- **Layout**: every table is partitioned by `day(<time column>)` and sorted by its sort columns; Parquet
  files are zstd-compressed, with min/max statistics on every column outside lists and maps (none on a
  map's keys and values or a list's elements: their bounds mix every row's entries and seldom prune
  anything). Timestamps are stored with `DELTA_BINARY_PACKED`; ids (`SpanId`, `ParentSpanId`, the
  logs' `TraceId`, ids inside links and exemplars) with `DELTA_LENGTH_BYTE_ARRAY` and `Duration` plain,
  both without a dictionary; every other column with one,
  except booleans, for which Parquet has none. Table properties: {", ".join(f"`{k}={v}`" for k, v in
  table_properties().items())}.

Nullability: "required" columns are never null. Field IDs are the Iceberg IDs the catalog stores.
"""


def type_name(t: ColumnType) -> str:
    if isinstance(t, Primitive):
        return t.name
    if isinstance(t, ListOf):
        return f"list<{type_name(t.element)}>"
    if isinstance(t, MapOf):
        return "map<string, string>"
    return "struct<" + ", ".join(f"{f.name}: {type_name(f.type)}" for f in t.fields) + ">"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rows(fields: tuple[Field, ...], schema: Schema, prefix: str = "") -> list[str]:
    rows = []
    for f in fields:
        name = prefix + f.name
        source = f.source + (f" ({f.doc})" if f.doc else "")
        rows.append(f"| {schema.find_field(name).field_id} | `{name}` | `{_cell(type_name(f.type))}` | "
                    f"{'required' if f.required else 'optional'} | {_cell(source)} | {_cell(f.example)} |")
        inner = f.type.element if isinstance(f.type, ListOf) else f.type
        if isinstance(inner, StructOf):
            rows += _rows(inner.fields, schema, name + ".")
    return rows


def render() -> str:
    parts = [INTRO]
    for name, spec in TABLES.items():
        schema = iceberg_schema(name)
        spec_text = ", ".join(f"{f.transform}({schema.find_column_name(f.source_id)})"
                              for f in iceberg_partition_spec(name).fields)
        parts.append(f"## `{name}`\n\nSignal: {spec.signal}"
                     + (f", metric type {spec.metric_type}" if spec.metric_type else "")
                     + f". Partition: {spec_text}. Sort: {', '.join(spec.sort_columns)}.\n")
        parts.append("| ID | Column | Type | Nullability | OTLP source | Example |\n|---|---|---|---|---|---|")
        parts.append("\n".join(_rows(spec.fields, schema)) + "\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
