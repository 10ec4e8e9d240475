"""Configuration: precedence (TOML < environment < flags), clear errors, redaction, TOML round trip."""

from __future__ import annotations

import pathlib

import pytest

from otlp2parquet.cli import main
from otlp2parquet.config import ENV_ONLY, load_settings, redacted, to_toml
from otlp2parquet.errors import ConfigError


def _toml(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_embedded_catalog_under_data() -> None:
    s = load_settings(environ={})
    assert s.server.listen == "127.0.0.1:4317"
    assert s.server.max_receive_bytes == 64 * 1024 * 1024
    assert s.iceberg.enabled and s.iceberg.namespace == "otel"
    assert s.catalog_uri() == f"sqlite:///{pathlib.Path('data').resolve()}/catalog.db"
    assert s.warehouse() == (pathlib.Path("data").resolve() / "warehouse").as_uri()
    assert (s.buffer.max_age_s, s.buffer.max_bytes, s.buffer.max_rows) == (30, 32 * 1024 * 1024, 1_000_000)


def test_a_flush_too_large_for_the_budget_is_named_at_start_up() -> None:
    assert load_settings(environ={}).buffer.crowded_flush() is None
    crowded = load_settings(environ={"OTLP2PARQUET_BUFFER__MAX_BYTES": str(64 * 1024 * 1024)}).buffer.crowded_flush()
    assert crowded is not None and "buffer.max_bytes (67108864)" in crowded
    roomy = {"OTLP2PARQUET_BUFFER__MAX_BYTES": str(64 * 1024 * 1024),
             "OTLP2PARQUET_BUFFER__MEMORY_BUDGET_BYTES": str(512 * 1024 * 1024)}
    assert load_settings(environ=roomy).buffer.crowded_flush() is None


def test_precedence_toml_then_environment_then_flags(tmp_path: pathlib.Path) -> None:
    config = _toml(tmp_path, '[server]\nlisten = "127.0.0.1:1111"\n[writer]\nbase_path = "/from/toml"\n'
                             '[iceberg]\nnamespace = "toml_ns"\n[buffer]\nmax_age_s = 5\n')
    env = {"OTLP2PARQUET_BASE_PATH": "/from/env", "OTLP2PARQUET_NAMESPACE": "env_ns",
           "OTLP2PARQUET_BUFFER__MAX_AGE_S": "7"}
    s = load_settings(config, {"writer": {"base_path": "/from/flag"}}, environ=env)
    assert s.server.listen == "127.0.0.1:1111"  # only in TOML
    assert s.iceberg.namespace == "env_ns"  # env beats TOML
    assert s.buffer.max_age_s == 7  # nested env form beats TOML
    assert s.writer.base_path == "/from/flag"  # flag beats env


@pytest.mark.parametrize(("name", "value", "section", "key", "expected"), [
    ("OTLP2PARQUET_LISTEN", "0.0.0.0:4319", "server", "listen", "0.0.0.0:4319"),
    ("OTLP2PARQUET_WARN_ON_CATALOG_FAILURE", "true", "iceberg", "warn_on_catalog_failure", True),
    ("OTLP2PARQUET_PARTITION_BY_SERVICE", "false", "writer", "partition_by_service", False),
    ("OTLP2PARQUET_ICEBERG_ENABLED", "false", "iceberg", "enabled", False),
])
def test_seed_environment_names(name: str, value: str, section: str, key: str, expected: object) -> None:
    s = load_settings(environ={name: value})
    assert getattr(getattr(s, section), key) == expected


@pytest.mark.parametrize(("toml", "env", "message"), [
    ("[buffer]\nmax_rowz = 5\n", {}, "buffer.max_rowz: unknown key"),
    ("[bufer]\n", {}, "bufer: unknown key"),
    ("[buffer]\nmax_rows = -1\n", {}, "buffer.max_rows: Input should be greater than 0 (got -1)"),
    ("", {"OTLP2PARQUET_LISTEN": "nonsense"}, "server.listen: Value error, expected HOST:PORT"),
    ("", {"OTLP2PARQUET_BASEPATH": "/x"}, "unknown environment variable OTLP2PARQUET_BASEPATH"),
    ("[logging]\nformat = 'xml'\n", {}, "logging.format: Input should be 'json' or 'text'"),
])
def test_bad_configuration_names_the_key(tmp_path: pathlib.Path, toml: str, env: dict[str, str],
                                         message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(_toml(tmp_path, toml), environ=env)


def test_config_command_prints_toml_that_reads_back(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTLP2PARQUET_BUFFER__MAX_ROWS", "1234")
    assert main(["config", "--listen", "127.0.0.1:4319"]) == 0
    printed = capsys.readouterr().out
    again = load_settings(_toml(tmp_path, printed), environ={})
    assert again.server.listen == "127.0.0.1:4319"
    assert again.buffer.max_rows == 1234
    original = load_settings(overrides={"server": {"listen": "127.0.0.1:4319"}, "buffer": {"max_rows": 1234}},
                             environ={})
    assert redacted(again) == redacted(original)


def test_secrets_are_redacted(tmp_path: pathlib.Path) -> None:
    config = _toml(tmp_path, '[iceberg]\ncatalog_uri = "postgresql+psycopg2://otel:hunter2@db:5432/cat"\n'
                             '[iceberg.catalog_properties]\ntoken = "abc123"\n"s3.secret-access-key" = "xyz"\n'
                             '"s3.region" = "us-east-1"\n')
    text = to_toml(redacted(load_settings(config, environ={})))
    assert "hunter2" not in text and "abc123" not in text and "xyz" not in text
    assert "postgresql+psycopg2://otel:***@db:5432/cat" in text
    assert '"s3.region" = "us-east-1"' in text


def test_bad_config_exits_2_with_the_message(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--config", str(_toml(tmp_path, "[server]\nlisten = 5\n"))]) == 2
    assert "server.listen" in capsys.readouterr().err


def test_config_example_documents_every_key_with_its_default() -> None:
    example = pathlib.Path(__file__).resolve().parents[1] / "config.example.toml"
    text = example.read_text()
    loaded = load_settings(example, environ={})
    defaults = load_settings(environ={})
    assert loaded == defaults, "the example's values are the defaults"
    for section, model in defaults:
        assert f"[{section}]" in text
        for key in type(model).model_fields:
            if (section, key) in ENV_ONLY:  # secrets: documented by their variable, never in the file
                assert f"OTLP2PARQUET_{key.upper()}" in text, f"{section}.{key}"
                continue
            assert f"\n{key} = " in text or f"\n# {key} = " in text or f"[{section}.{key}]" in text, \
                f"{section}.{key} is not documented in config.example.toml"


def test_an_object_store_base_path_needs_a_local_wal_and_a_real_catalog() -> None:
    remote = {"OTLP2PARQUET_BASE_PATH": "s3://lake/otel"}
    with pytest.raises(ConfigError, match=r"set wal\.dir"):
        load_settings(environ=remote)
    with pytest.raises(ConfigError, match=r"embedded SQLite catalog needs a local file"):
        load_settings(environ={**remote, "OTLP2PARQUET_WAL_DIR": "/var/lib/wal"})
    plain = load_settings(environ={**remote, "OTLP2PARQUET_WAL_DIR": "/var/lib/wal",
                                   "OTLP2PARQUET_ICEBERG_ENABLED": "false"})
    assert plain.writer.base_path == "s3://lake/otel"
    shared = load_settings(environ={**remote, "OTLP2PARQUET_WAL_DIR": "/var/lib/wal",
                                    "OTLP2PARQUET_CATALOG_URI": "postgresql+psycopg2://db/catalog"})
    assert shared.warehouse() == "s3://lake/otel/warehouse"
