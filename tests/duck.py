"""DuckDB as an independent reader, with the Iceberg extension loaded offline from its wheel."""

from __future__ import annotations

import pathlib

import duckdb
import duckdb_extension_avro
import duckdb_extension_iceberg


def extension(module: object, name: str) -> pathlib.Path:
    folder = pathlib.Path(module.__file__).parent  # type: ignore[attr-defined]
    found = sorted(folder.glob(f"extensions/*/{name}.duckdb_extension"))
    if not found:
        raise FileNotFoundError(f"{name}.duckdb_extension missing from {folder}")
    return found[0]


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for module, name in ((duckdb_extension_avro, "avro"), (duckdb_extension_iceberg, "iceberg")):
        con.execute(f"LOAD '{extension(module, name)}'")
    return con
