"""Every configuration block in docs/catalogs.md loads and selects the catalog its text says it does."""

from __future__ import annotations

import pathlib
import re

import pytest

from otlp2parquet.config import load_settings, redacted
from otlp2parquet.writer.catalogs import catalog_kind, catalog_properties

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "catalogs.md").read_text()
BLOCKS = re.findall(r"<!-- test: kind=(\w+)(?: env=([\w,]+))? -->\n```toml\n(.*?)```", DOC, flags=re.S)


def test_every_toml_block_is_marked() -> None:
    assert len(BLOCKS) == DOC.count("```toml") >= 10


@pytest.mark.parametrize(("kind", "env", "toml"), BLOCKS, ids=[f"{i}-{b[0]}" for i, b in enumerate(BLOCKS)])
def test_block_loads_and_selects_its_catalog(tmp_path: pathlib.Path, kind: str, env: str, toml: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml)
    environ = {name: f"doc-id-{i}:doc-secret-{i}" for i, name in enumerate(filter(None, env.split(",")))}
    settings = load_settings(path, environ=environ)
    if kind == "none":
        assert not settings.iceberg.enabled
        return
    assert catalog_kind(settings) == kind
    props = catalog_properties(settings)
    shown = str(redacted(settings))
    for secret in environ.values():
        assert secret in str(props) and secret not in shown


def test_an_azure_key_from_the_environment_is_redacted() -> None:
    settings = load_settings(environ={"OTLP2PARQUET_ICEBERG__CATALOG_PROPERTIES": '{"adls.account-key": "azkey"}'})
    assert catalog_properties(settings)["adls.account-key"] == "azkey"
    assert "azkey" not in str(redacted(settings))
