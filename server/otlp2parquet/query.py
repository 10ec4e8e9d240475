"""Looking at the data: `otlp2parquet tables` and `otlp2parquet query "SQL"` (DuckDB over the Iceberg tables).

DuckDB reads each table through its Iceberg extension, loaded from the `duckdb-extension-iceberg` and
`duckdb-extension-avro` wheels (no download at run time); the seven tables are registered under their names.
Install with `pip install 'otlp2parquet[query]'`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import pathlib
from typing import Any

from pyiceberg.table import Table

from otlp2parquet.errors import ConfigError


def table_summary(name: str, table: Table) -> dict[str, Any]:
    snapshot = table.current_snapshot()
    summary = snapshot.summary if snapshot is not None and snapshot.summary is not None else None
    return {
        "table": name,
        "rows": int(summary.get("total-records", 0)) if summary else 0,
        "data_files": int(summary.get("total-data-files", 0)) if summary else 0,
        "bytes": int(summary.get("total-files-size", 0)) if summary else 0,
        "snapshots": len(table.snapshots()),
        "newest_commit": (dt.datetime.fromtimestamp(snapshot.timestamp_ms / 1000, dt.UTC).isoformat(timespec="seconds")
                          if snapshot else ""),
    }


def connect(tables: dict[str, Table]) -> Any:
    try:
        import duckdb
        import duckdb_extension_avro
        import duckdb_extension_iceberg
    except ImportError as exc:
        raise ConfigError("the query command needs DuckDB: pip install 'otlp2parquet[query]'") from exc
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for module, name in ((duckdb_extension_avro, "avro"), (duckdb_extension_iceberg, "iceberg")):
        folder = pathlib.Path(module.__file__).parent
        extension = next(folder.glob(f"extensions/*/{name}.duckdb_extension"), None)
        if extension is None:
            raise ConfigError(f"{name}.duckdb_extension is missing from {folder}")
        con.execute(f"LOAD '{extension}'")
    for name, table in tables.items():
        location = table.metadata_location.replace("'", "''")
        con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM iceberg_scan(\'{location}\')')
    return con


def run_query(tables: dict[str, Table], sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    con = connect(tables)
    cursor = con.execute(sql)
    columns = [d[0] for d in cursor.description] if cursor.description else []
    return columns, cursor.fetchall()


def _text(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return "" if value is None else str(value)


def render(columns: list[str], rows: list[tuple[Any, ...]], fmt: str) -> str:
    if fmt == "json":
        return "\n".join(json.dumps(dict(zip(columns, row, strict=True)), default=_text) for row in rows) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows([[_text(v) for v in row] for row in rows])
        return out.getvalue()
    cells = [[_text(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    lines = [line(columns), line(["-" * w for w in widths]), *(line(r) for r in cells)]
    return "\n".join(lines) + f"\n({len(rows)} row{'s' if len(rows) != 1 else ''})\n"
