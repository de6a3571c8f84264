"""Settings: every bad value stops with the variable's name and never echoes a secret."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from rivyahooks_foundation.settings import (
    VARIABLES,
    Settings,
    SettingsError,
    early_value,
    markdown_table,
)
from rivyahooks_protocol import contract
from tests.conftest import OTHER_SECRET, SECRET


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RIVYA_WEBHOOK_SCHEME", "hmac-md5"),
        ("RIVYA_WEBHOOK_TOLERANCE_SECONDS", "five"),
        ("RIVYA_WEBHOOK_TOLERANCE_SECONDS", "0"),
        ("RIVYA_WEBHOOK_MAX_BODY_BYTES", "12"),
        ("RIVYA_WEBHOOK_MAX_BODY_BYTES", "1.5e6"),
        ("PROCESS_TIME_LIMIT_SECONDS", "1"),
        ("RELAY_POLL_SECONDS", "0"),
        ("SWEEP_INTERVAL_SECONDS", "0"),
        ("TASK_VISIBILITY_TIMEOUT_SECONDS", "5"),
        ("PROCESS_MAX_ATTEMPTS", "0"),
        ("RIVYA_API_BASE", "ftp://rivya.ai"),
        ("RIVYA_HTTP_TIMEOUT_SECONDS", "0"),
        ("RIVYA_HTTP_TIMEOUT_SECONDS", "nan"),
        ("RIVYA_HTTP_TIMEOUT_SECONDS", "soon"),
        ("RIVYA_MAX_ATTEMPTS", "x"),
        ("RIVYA_DOWNLOAD_MAX_BYTES", "0"),
        ("RECONCILE_INTERVAL_SECONDS", "0"),
        ("RECONCILE_OVERLAP_SECONDS", "-5"),
        ("RECONCILE_POLL_AFTER_SECONDS", "later"),
        ("LOG_LEVEL", "LOUD"),
        ("LOG_FORMAT", "xml"),
        ("WORKER_METRICS_PORT", "70000"),
        ("BEAT_METRICS_PORT", "-1"),
        ("METRICS_DATABASE_INTERVAL_SECONDS", "0"),
        ("RETENTION_EVENTS_DAYS", "-1"),
        ("RETENTION_RESULTS_DAYS", "a month"),
        ("RETENTION_INTERVAL_SECONDS", "10"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert name in str(caught.value)


@pytest.mark.parametrize(
    "secrets",
    [
        "not-a-whsec-secret-value-1234",
        "whsec_not!base64?secret-value",
        f"{SECRET},whsec_%%%%secret-value%%%%",
        f"{SECRET},sk_live_secret-value",
    ],
)
def test_bad_secret_never_echoes_it(secrets: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"RIVYA_WEBHOOK_SECRETS": secrets})
    message = str(caught.value)
    assert "RIVYA_WEBHOOK_SECRETS" in message
    assert "secret #" in message
    for secret in secrets.split(","):
        assert secret not in message
        assert secret.removeprefix("whsec_") not in message
    assert "secret-value" not in message


def test_secrets_are_not_in_repr() -> None:
    settings = Settings(
        webhook_secrets=(SECRET,), rivya_api_key="key-value", results_api_token="t0k"
    )
    text = repr(settings)
    assert SECRET not in text
    assert "key-value" not in text
    assert "t0k" not in text


def test_missing_secrets_error_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="RIVYA_WEBHOOK_SECRETS"):
        Settings.from_env({}).require_webhook_secrets()


def test_rotation_list_keeps_order_and_case() -> None:
    settings = Settings.from_env({"RIVYA_WEBHOOK_SECRETS": f" {SECRET} , {OTHER_SECRET} ,"})
    assert settings.webhook_secrets == (SECRET, OTHER_SECRET)


def test_empty_values_mean_defaults() -> None:
    assert Settings.from_env({v.name: "  " for v in VARIABLES}) == Settings()


def test_to_env_round_trip() -> None:
    original = Settings(
        database_url="postgresql+psycopg://u@db:5432/hooks",
        broker_url="redis://127.0.0.1:6379/3",
        webhook_secrets=(SECRET, OTHER_SECRET),
        webhook_scheme=contract.SCHEME_TIMESTAMPED_HMAC,
        webhook_tolerance_seconds=120,
        webhook_max_body_bytes=65_536,
        process_time_limit_seconds=30,
        relay_poll_seconds=0.5,
        rivya_api_base="http://127.0.0.1:9999",
        rivya_api_key="rk_test",
        rivya_http_timeout_seconds=2.5,
        download_allowed_hosts=("cdn.example", "files.example"),
        results_api_tokens=("token-one-0123456789", "token-two-0123456789"),
        results_api_token="older-token-0123456789",
        storage_url="s3://bucket/some/prefix",
        results_file_delivery="proxy",
        log_level="DEBUG",
        console_session_key=bytes(range(32)),
        console_session_hours=0.5,
        trusted_proxies=("10.0.0.5",),
    )
    env = original.to_env()
    assert set(env) == {v.name for v in VARIABLES}
    assert Settings.from_env(env) == original


def test_results_tokens_come_from_both_variables() -> None:
    settings = Settings.from_env(
        {"RESULTS_API_TOKENS": "a" * 16 + ", " + "b" * 20 + ",", "RESULTS_API_TOKEN": "c" * 16}
    )
    assert settings.results_tokens() == ("a" * 16, "b" * 20, "c" * 16)


@pytest.mark.parametrize("value", ["s3://", "ftp://x", "file://", "/var/results"])
def test_storage_url_must_name_a_backend(value: str) -> None:
    with pytest.raises(SettingsError, match="STORAGE_URL"):
        Settings.from_env({"STORAGE_URL": value})


def test_to_env_round_trip_of_defaults() -> None:
    assert Settings.from_env(Settings().to_env()) == Settings()


@pytest.mark.parametrize("scheme", contract.SCHEMES)
@pytest.mark.parametrize(
    "secret",
    [
        "whsec_",
        "whsec_AA==",
        "whsec_" + base64.b64encode(bytes(range(23))).decode(),
    ],
)
def test_short_secret_refused_under_every_scheme(scheme: str, secret: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"RIVYA_WEBHOOK_SECRETS": secret, "RIVYA_WEBHOOK_SCHEME": scheme})
    message = str(caught.value)
    assert message.startswith("RIVYA_WEBHOOK_SECRETS: secret #1 ")
    assert "at least 24" in message or "base64" in message
    if secret != "whsec_":
        assert secret.removeprefix("whsec_") not in message


def test_secret_of_24_bytes_is_enough() -> None:
    secret = "whsec_" + base64.b64encode(bytes(range(24))).decode()
    assert Settings.from_env({"RIVYA_WEBHOOK_SECRETS": secret}).webhook_secrets == (secret,)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://app:pw@db:5432/hooks", "postgresql+psycopg://app:pw@db:5432/hooks"),
        ("postgresql://app@db/hooks", "postgresql+psycopg://app@db/hooks"),
        ("postgresql+psycopg://app@db/hooks", "postgresql+psycopg://app@db/hooks"),
        ("sqlite:///var/x.sqlite3", "sqlite:///var/x.sqlite3"),
    ],
)
def test_database_url_forms_platforms_hand_out(given: str, expected: str) -> None:
    assert Settings.from_env({"DATABASE_URL": given}).database_url == expected


@pytest.mark.parametrize(
    "url",
    [
        "not a url at all p4ssw0rd",
        "mysql://app:p4ssw0rd@db/hooks",
        "postgresql+asyncpg://app:p4ssw0rd@db/hooks",
        "postgres://app:p4ssw0rd@db",
        "oracle://app:p4ssw0rd@db/hooks",
    ],
)
def test_bad_database_url_names_the_variable_not_the_password(url: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"DATABASE_URL": url})
    assert str(caught.value).startswith("DATABASE_URL ")
    assert "p4ssw0rd" not in str(caught.value)


@pytest.mark.parametrize("url", ["amqp://guest:p4ss@rabbit//", "http://redis:6379", "redis"])
def test_bad_broker_url_names_the_variable(url: str) -> None:
    with pytest.raises(SettingsError, match=r"^BROKER_URL ") as caught:
        Settings.from_env({"BROKER_URL": url})
    assert "p4ss" not in str(caught.value)


def test_secret_from_file(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(SECRET + "\n")
    (tmp_path / "key").write_text("rvya_sk_from_a_file")
    settings = Settings.from_env(
        {
            "RIVYA_WEBHOOK_SECRETS_FILE": str(tmp_path / "secret"),
            "RIVYA_API_KEY_FILE": str(tmp_path / "key"),
        }
    )
    assert settings.webhook_secrets == (SECRET,)
    assert settings.rivya_api_key == "rvya_sk_from_a_file"


def test_the_metrics_token_comes_from_a_file_too(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("metrics-token-from-a-file\n")
    settings = Settings.from_env({"METRICS_TOKEN_FILE": str(tmp_path / "token")})
    assert settings.metrics_token == "metrics-token-from-a-file"
    assert "metrics-token-from-a-file" not in repr(settings)


def test_early_values_fall_back_to_defaults_instead_of_failing() -> None:
    # How to log is decided before the settings are checked; the check reports the error.
    assert early_value("log_format", {"LOG_FORMAT": "console"}) == "console"
    assert early_value("log_format", {"LOG_FORMAT": "xml"}) == "json"
    assert early_value("log_level", {}) == "INFO"


def test_secret_and_its_file_both_set_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("rvya_sk_one")
    with pytest.raises(SettingsError, match="RIVYA_API_KEY and RIVYA_API_KEY_FILE"):
        Settings.from_env({"RIVYA_API_KEY": "rvya_sk_two", "RIVYA_API_KEY_FILE": str(tmp_path)})


def test_unreadable_secret_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^RIVYA_API_KEY_FILE: cannot read"):
        Settings.from_env({"RIVYA_API_KEY_FILE": str(tmp_path / "missing")})


def test_a_file_variable_exists_only_for_secrets(tmp_path: Path) -> None:
    (tmp_path / "level").write_text("DEBUG")
    settings = Settings.from_env({"LOG_LEVEL_FILE": str(tmp_path / "level")})
    assert settings.log_level == "INFO"


def test_readme_table_is_the_settings_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert markdown_table() in readme, (
        "README's settings table differs: paste `rivya-hooks settings --markdown` into it"
    )


def test_time_limits_must_fit_inside_the_visibility_timeout() -> None:
    from tasks.runtime import TimeLimits

    limits = TimeLimits.from_settings(Settings(process_time_limit_seconds=60))
    assert limits.downloads < limits.soft < limits.hard < limits.renewals_end
    with pytest.raises(SettingsError) as caught:
        TimeLimits.from_settings(
            Settings(process_time_limit_seconds=60, task_visibility_timeout_seconds=60)
        )
    assert "PROCESS_TIME_LIMIT_SECONDS" in str(caught.value)
    assert "TASK_VISIBILITY_TIMEOUT_SECONDS" in str(caught.value)


def test_data_encryption_keys_are_base64_keys_of_32_bytes_never_echoed() -> None:
    b64 = base64
    first, second = os.urandom(32), os.urandom(32)
    value = f"{b64.b64encode(first).decode()}, {b64.b64encode(second).decode()}"
    settings = Settings.from_env({"DATA_ENCRYPTION_KEYS": value})
    assert settings.data_encryption_keys == (first, second)
    assert Settings.from_env(settings.to_env()).data_encryption_keys == (first, second)
    assert "data_encryption_keys" not in repr(settings)
    assert Settings.from_env({}).data_encryption_keys == ()
    short = b64.b64encode(b"sixteen byte key").decode()
    for bad, why in (
        ("not base64!", "key #1 is not base64"),
        (f"{b64.b64encode(first).decode()},{short}", "key #2 decodes to 16 bytes"),
        (f"{b64.b64encode(first).decode()},{b64.b64encode(first).decode()}", "key #2 repeats"),
    ):
        with pytest.raises(SettingsError, match=why) as caught:
            Settings.from_env({"DATA_ENCRYPTION_KEYS": bad})
        assert short not in str(caught.value)
        assert b64.b64encode(first).decode() not in str(caught.value)
