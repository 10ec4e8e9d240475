"""Catalog properties built from our settings, asserted exactly; half-configured catalogs stop start-up."""

from __future__ import annotations

import logging
import pathlib

import pytest

from otlp2parquet.cli import main
from otlp2parquet.config import load_settings
from otlp2parquet.errors import ConfigError
from otlp2parquet.writer.catalogs import catalog_properties

ARN = "arn:aws:s3tables:eu-west-1:111122223333:bucket/otel-tables"


def props(env: dict[str, str], **iceberg: object) -> dict:
    return catalog_properties(load_settings(overrides={"iceberg": iceberg} if iceberg else None, environ=env))


def test_embedded_default() -> None:
    p = props({}, catalog_uri=None)
    assert p == {"type": "sql", "uri": f"sqlite:///{pathlib.Path('data').resolve()}/catalog.db",
                 "warehouse": (pathlib.Path("data").resolve() / "warehouse").as_uri(),
                 "py-io-impl": "otlp2parquet.writer.durable.DurableFileIO"}  # local files fsynced on close


def test_s3_tables_from_the_arn() -> None:
    assert props({"OTLP2PARQUET_S3_TABLES_ARN": ARN}) == {
        "type": "rest", "uri": "https://s3tables.eu-west-1.amazonaws.com/iceberg", "warehouse": ARN,
        "rest.sigv4-enabled": "true", "rest.signing-name": "s3tables", "rest.signing-region": "eu-west-1"}


@pytest.mark.parametrize("arn", ["arn:aws:s3:::bucket", "arn:aws:s3tables:eu-west-1:1234:bucket/x",
                                 "arn:aws:s3tables:eu-west-1:111122223333:table/otel"])
def test_a_malformed_arn_stops_start_up(arn: str) -> None:
    with pytest.raises(ConfigError, match=r"iceberg\.s3_tables_arn: expected arn:aws:s3tables"):
        props({"OTLP2PARQUET_S3_TABLES_ARN": arn})


def test_r2_data_catalog_with_its_derived_uri_and_warehouse() -> None:
    env = {"OTLP2PARQUET_R2_ACCOUNT_ID": "abc123", "OTLP2PARQUET_R2_BUCKET_NAME": "otel",
           "OTLP2PARQUET_R2_API_TOKEN": "r2-secret"}
    assert props(env) == {"type": "rest", "uri": "https://catalog.cloudflarestorage.com/abc123/otel",
                          "warehouse": "abc123_otel", "token": "r2-secret"}
    printed = {"uri": "https://catalog.cloudflarestorage.com/abc123/otel-x", "warehouse": "abc123_otel-x"}
    assert props({**env, "OTLP2PARQUET_CATALOG_URI": printed["uri"], "OTLP2PARQUET_WAREHOUSE": printed["warehouse"]}
                 )["uri"] == printed["uri"]


def test_r2_without_a_token_names_what_is_missing() -> None:
    with pytest.raises(ConfigError, match="needs OTLP2PARQUET_R2_API_TOKEN"):
        props({"OTLP2PARQUET_R2_ACCOUNT_ID": "abc123", "OTLP2PARQUET_R2_BUCKET_NAME": "otel"})
    with pytest.raises(ConfigError, match=r"needs iceberg\.r2_bucket_name"):
        props({"OTLP2PARQUET_R2_ACCOUNT_ID": "abc123", "OTLP2PARQUET_R2_API_TOKEN": "t"})


def test_generic_rest_with_token_headers_and_ca_bundle() -> None:
    p = props({"OTLP2PARQUET_REST_TOKEN": "tok"}, catalog_uri="https://polaris.example.com/api/catalog",
              warehouse="otel", rest_headers={"X-Tenant": "obs"}, rest_ca_bundle="/etc/ca.pem")
    assert p == {"type": "rest", "uri": "https://polaris.example.com/api/catalog", "warehouse": "otel",
                 "token": "tok", "header.X-Tenant": "obs", "ssl": {"cabundle": "/etc/ca.pem"}}


def test_generic_rest_with_oauth2_client_credentials() -> None:
    p = props({"OTLP2PARQUET_REST_CREDENTIAL": "client:secret"}, catalog_uri="https://nessie/iceberg",
              rest_oauth2_server_uri="https://idp/token", rest_scope="catalog")
    assert p == {"type": "rest", "uri": "https://nessie/iceberg", "credential": "client:secret",
                 "oauth2-server-uri": "https://idp/token", "scope": "catalog"}


def test_postgres_glue_and_s3_storage() -> None:
    p = props({"OTLP2PARQUET_S3_ACCESS_KEY_ID": "AKIA", "OTLP2PARQUET_S3_SECRET_ACCESS_KEY": "shh"},
              catalog_uri="postgresql+psycopg2://otel:pw@db:5432/catalog", warehouse="s3://lake/warehouse",
              s3_endpoint="http://minio:9000", s3_region="us-east-1", s3_path_style=True)
    assert p == {"type": "sql", "uri": "postgresql+psycopg2://otel:pw@db:5432/catalog",
                 "warehouse": "s3://lake/warehouse", "s3.endpoint": "http://minio:9000", "s3.region": "us-east-1",
                 "s3.access-key-id": "AKIA", "s3.secret-access-key": "shh", "s3.force-virtual-addressing": "false"}
    assert props({}, glue_region="eu-central-1", warehouse="s3://lake/w") == {
        "type": "glue", "glue.region": "eu-central-1", "warehouse": "s3://lake/w"}


def test_precedence_is_explicit_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        p = props({"OTLP2PARQUET_S3_TABLES_ARN": ARN, "OTLP2PARQUET_R2_ACCOUNT_ID": "abc"},
                  catalog_uri="https://rest.example.com")
    assert p["rest.signing-name"] == "s3tables"
    assert caplog.records[-1].configured == ["s3tables", "r2", "uri"]


def test_secrets_stay_out_of_files_output_and_errors(tmp_path: pathlib.Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[iceberg]\nr2_api_token = "in-a-file"\n')
    with pytest.raises(ConfigError, match="is a secret: set OTLP2PARQUET_R2_API_TOKEN in the environment"):
        load_settings(config, environ={})
    for name, value in (("OTLP2PARQUET_R2_API_TOKEN", "tok-123"), ("OTLP2PARQUET_REST_CREDENTIAL", "id:cred-456"),
                        ("OTLP2PARQUET_S3_SECRET_ACCESS_KEY", "key-789")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OTLP2PARQUET_ICEBERG__REST_HEADERS", '{"Authorization": "Bearer hdr-000"}')
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert not any(secret in out for secret in ("tok-123", "cred-456", "key-789", "hdr-000"))
    assert 'r2_api_token = "***"' in out
    with pytest.raises(ConfigError) as error:
        props({"OTLP2PARQUET_REST_CREDENTIAL": "no-colon-secret"}, catalog_uri="https://rest.example.com")
    assert "no-colon-secret" not in str(error.value)


def test_an_unreachable_catalog_is_one_clear_error_without_the_password() -> None:
    from otlp2parquet.errors import CatalogError
    from otlp2parquet.writer.catalogs import build_catalog
    from tests.integration.server import free_port

    uri = f"postgresql+psycopg2://otel:hunter2@127.0.0.1:{free_port()}/catalog"
    with pytest.raises(CatalogError) as caught:
        build_catalog(load_settings(environ={"OTLP2PARQUET_CATALOG_URI": uri}))
    message = str(caught.value)
    assert message.startswith("cannot open the sql catalog at postgresql+psycopg2://otel:***@127.0.0.1:")
    assert "hunter2" not in message and "OperationalError" in message
