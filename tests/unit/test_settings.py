"""Settings: every bad value stops with the variable's name and never echoes a secret."""

from __future__ import annotations

import pytest

from rivyahooks.rivya import contract
from rivyahooks.settings import ENV_FIELDS, Settings, SettingsError
from tests.conftest import OTHER_SECRET, SECRET


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RIVYA_WEBHOOK_SCHEME", "hmac-md5"),
        ("RIVYA_WEBHOOK_TOLERANCE_SECONDS", "five"),
        ("RIVYA_WEBHOOK_TOLERANCE_SECONDS", "0"),
        ("RIVYA_WEBHOOK_MAX_BODY_BYTES", "12"),
        ("RIVYA_WEBHOOK_MAX_BODY_BYTES", "1.5e6"),
        ("SWEEP_RECEIVED_AFTER_SECONDS", "-1"),
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


def test_timestamped_scheme_accepts_any_whsec_secret() -> None:
    # The timestamped scheme keys with the whole string, so base64 is not required of it.
    settings = Settings.from_env(
        {
            "RIVYA_WEBHOOK_SCHEME": contract.SCHEME_TIMESTAMPED_HMAC,
            "RIVYA_WEBHOOK_SECRETS": "whsec_!",
        }
    )
    assert settings.webhook_secrets == ("whsec_!",)


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
    assert Settings.from_env({name: "  " for name in ENV_FIELDS}) == Settings()


def test_to_env_round_trip() -> None:
    original = Settings(
        database_url="postgresql+psycopg://u@db:5432/hooks",
        broker_url="redis://127.0.0.1:6379/3",
        webhook_secrets=(SECRET, OTHER_SECRET),
        webhook_scheme=contract.SCHEME_TIMESTAMPED_HMAC,
        webhook_tolerance_seconds=120,
        webhook_max_body_bytes=65_536,
        sweep_received_after_seconds=0,
        rivya_api_base="http://127.0.0.1:9999",
        rivya_api_key="rk_test",
        rivya_http_timeout_seconds=2.5,
        download_allowed_hosts=("cdn.example", "files.example"),
        results_api_token="token",
        log_level="DEBUG",
    )
    env = original.to_env()
    assert set(env) == set(ENV_FIELDS)
    assert Settings.from_env(env) == original


def test_to_env_round_trip_of_defaults() -> None:
    assert Settings.from_env(Settings().to_env()) == Settings()
