"""The one settings object: the only place that reads the environment.

Built once when a process starts (`Settings.from_env()`), never at import. Tests build it
directly with the values they need. A bad value raises SettingsError naming the variable,
never echoing a secret value.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rivyahooks.rivya import contract
from rivyahooks.rivya.signatures import secret_key


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///var/rivya-hooks.sqlite3"
    # Kombu's SQLAlchemy transport: a broker that needs no server, for the demo and laptops.
    broker_url: str = "sqla+sqlite:///var/celery-broker.sqlite3"
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    webhook_scheme: str = contract.SCHEME_STANDARD
    webhook_tolerance_seconds: int = contract.DEFAULT_TOLERANCE_SECONDS
    webhook_max_body_bytes: int = 1_048_576
    # Events committed but never enqueued (broker down) are re-enqueued after this age.
    sweep_received_after_seconds: int = 60
    sweep_interval_seconds: int = 60
    # Longest a task may run before the broker hands its message to another worker; events
    # left `processing` longer than this are re-enqueued by the sweeper.
    task_visibility_timeout_seconds: int = 3600
    process_max_attempts: int = 8
    # First delay between processing attempts; it doubles per attempt (with jitter).
    process_retry_base_seconds: float = 2.0
    rivya_api_base: str = contract.DEFAULT_API_BASE
    rivya_api_key: str = field(default="", repr=False)
    rivya_http_timeout_seconds: float = 10.0
    rivya_max_attempts: int = 5
    download_allowed_hosts: tuple[str, ...] = ()
    download_max_bytes: int = 8 * 1024**3
    storage_url: str = "file://var/results"
    reconcile_interval_seconds: int = 300
    reconcile_overlap_seconds: int = 300
    reconcile_poll_after_seconds: int = 600
    # Bearer token for the results API; unset keeps that API closed.
    results_api_token: str = field(default="", repr=False)
    log_level: str = "INFO"

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed (tests and the demo use it)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the environment, validating every variable."""
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        defaults = cls()
        scheme = reader.choice("RIVYA_WEBHOOK_SCHEME", defaults.webhook_scheme, contract.SCHEMES)
        return cls(
            database_url=reader.text("DATABASE_URL", defaults.database_url),
            broker_url=reader.text("BROKER_URL", defaults.broker_url),
            webhook_secrets=reader.secrets("RIVYA_WEBHOOK_SECRETS", scheme),
            webhook_scheme=scheme,
            webhook_tolerance_seconds=reader.integer(
                "RIVYA_WEBHOOK_TOLERANCE_SECONDS", defaults.webhook_tolerance_seconds, 1
            ),
            webhook_max_body_bytes=reader.integer(
                "RIVYA_WEBHOOK_MAX_BODY_BYTES", defaults.webhook_max_body_bytes, 1024
            ),
            sweep_received_after_seconds=reader.integer(
                "SWEEP_RECEIVED_AFTER_SECONDS", defaults.sweep_received_after_seconds, 0
            ),
            sweep_interval_seconds=reader.integer(
                "SWEEP_INTERVAL_SECONDS", defaults.sweep_interval_seconds, 1
            ),
            task_visibility_timeout_seconds=reader.integer(
                "TASK_VISIBILITY_TIMEOUT_SECONDS", defaults.task_visibility_timeout_seconds, 10
            ),
            process_max_attempts=reader.integer(
                "PROCESS_MAX_ATTEMPTS", defaults.process_max_attempts, 1
            ),
            process_retry_base_seconds=reader.number(
                "PROCESS_RETRY_BASE_SECONDS", defaults.process_retry_base_seconds
            ),
            rivya_api_base=reader.url("RIVYA_API_BASE", defaults.rivya_api_base),
            rivya_api_key=reader.text("RIVYA_API_KEY", ""),
            rivya_http_timeout_seconds=reader.number(
                "RIVYA_HTTP_TIMEOUT_SECONDS", defaults.rivya_http_timeout_seconds
            ),
            rivya_max_attempts=reader.integer("RIVYA_MAX_ATTEMPTS", defaults.rivya_max_attempts, 1),
            download_allowed_hosts=reader.items("RIVYA_DOWNLOAD_ALLOWED_HOSTS"),
            download_max_bytes=reader.integer(
                "RIVYA_DOWNLOAD_MAX_BYTES", defaults.download_max_bytes, 1
            ),
            storage_url=reader.text("STORAGE_URL", defaults.storage_url),
            reconcile_interval_seconds=reader.integer(
                "RECONCILE_INTERVAL_SECONDS", defaults.reconcile_interval_seconds, 1
            ),
            reconcile_overlap_seconds=reader.integer(
                "RECONCILE_OVERLAP_SECONDS", defaults.reconcile_overlap_seconds, 0
            ),
            reconcile_poll_after_seconds=reader.integer(
                "RECONCILE_POLL_AFTER_SECONDS", defaults.reconcile_poll_after_seconds, 0
            ),
            results_api_token=reader.text("RESULTS_API_TOKEN", ""),
            log_level=reader.choice(
                "LOG_LEVEL", defaults.log_level, ("DEBUG", "INFO", "WARNING", "ERROR")
            ),
        )

    def to_env(self) -> dict[str, str]:
        """Return the environment that rebuilds these settings in a child process."""
        values: dict[str, str] = {}
        for name, field_name in ENV_FIELDS.items():
            value = getattr(self, field_name)
            values[name] = ",".join(value) if isinstance(value, tuple) else str(value)
        return values

    def require_webhook_secrets(self) -> tuple[str, ...]:
        """Return the webhook secrets, or explain how to configure them."""
        if not self.webhook_secrets:
            raise SettingsError(
                "RIVYA_WEBHOOK_SECRETS is not set: the receiver cannot verify deliveries. "
                "Set it to the whsec_ secret Rivya gave when the endpoint was registered "
                "(`rivya-hooks webhooks register --url ...`)."
            )
        return self.webhook_secrets

    def require_api_key(self) -> str:
        """Return the Rivya API key, or explain how to configure it."""
        if not self.rivya_api_key:
            raise SettingsError(
                "RIVYA_API_KEY is not set: this command talks to Rivya. "
                "Create a key in the Rivya dashboard and export RIVYA_API_KEY."
            )
        return self.rivya_api_key

    def storage_root(self) -> Path:
        """Return the directory of a file:// STORAGE_URL."""
        if not self.storage_url.startswith("file://"):
            raise SettingsError("STORAGE_URL must start with file://")
        return Path(self.storage_url.removeprefix("file://"))


# Every variable and the field it fills; from_env reads them, to_env writes them back.
ENV_FIELDS = {
    "DATABASE_URL": "database_url",
    "BROKER_URL": "broker_url",
    "RIVYA_WEBHOOK_SECRETS": "webhook_secrets",
    "RIVYA_WEBHOOK_SCHEME": "webhook_scheme",
    "RIVYA_WEBHOOK_TOLERANCE_SECONDS": "webhook_tolerance_seconds",
    "RIVYA_WEBHOOK_MAX_BODY_BYTES": "webhook_max_body_bytes",
    "SWEEP_RECEIVED_AFTER_SECONDS": "sweep_received_after_seconds",
    "SWEEP_INTERVAL_SECONDS": "sweep_interval_seconds",
    "TASK_VISIBILITY_TIMEOUT_SECONDS": "task_visibility_timeout_seconds",
    "PROCESS_MAX_ATTEMPTS": "process_max_attempts",
    "PROCESS_RETRY_BASE_SECONDS": "process_retry_base_seconds",
    "RIVYA_API_BASE": "rivya_api_base",
    "RIVYA_API_KEY": "rivya_api_key",
    "RIVYA_HTTP_TIMEOUT_SECONDS": "rivya_http_timeout_seconds",
    "RIVYA_MAX_ATTEMPTS": "rivya_max_attempts",
    "RIVYA_DOWNLOAD_ALLOWED_HOSTS": "download_allowed_hosts",
    "RIVYA_DOWNLOAD_MAX_BYTES": "download_max_bytes",
    "STORAGE_URL": "storage_url",
    "RECONCILE_INTERVAL_SECONDS": "reconcile_interval_seconds",
    "RECONCILE_OVERLAP_SECONDS": "reconcile_overlap_seconds",
    "RECONCILE_POLL_AFTER_SECONDS": "reconcile_poll_after_seconds",
    "RESULTS_API_TOKEN": "results_api_token",
    "LOG_LEVEL": "log_level",
}


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def _raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def text(self, name: str, default: str) -> str:
        value = self._raw(name)
        return default if value is None else value

    def url(self, name: str, default: str) -> str:
        value = self.text(name, default).rstrip("/")
        if not value.startswith(("https://", "http://")):
            raise SettingsError(f"{name} must be an http(s) URL")
        return value

    def integer(self, name: str, default: int, minimum: int) -> int:
        value = self._raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number") from None
        if number < minimum:
            raise SettingsError(f"{name} must be at least {minimum}")
        return number

    def number(self, name: str, default: float) -> float:
        value = self._raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise SettingsError(f"{name} must be a number") from None
        if not number > 0:
            raise SettingsError(f"{name} must be greater than 0")
        return number

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in allowed:
            raise SettingsError(f"{name} must be one of: {', '.join(allowed)}")
        return value

    def items(self, name: str) -> tuple[str, ...]:
        value = self._raw(name)
        if value is None:
            return ()
        return tuple(item.strip().lower() for item in value.split(",") if item.strip())

    def secrets(self, name: str, scheme: str) -> tuple[str, ...]:
        # Secrets keep their case, unlike host names. Messages name a secret by its position.
        value = self._raw(name)
        secrets = () if value is None else tuple(s.strip() for s in value.split(",") if s.strip())
        for position, secret in enumerate(secrets, start=1):
            if not secret.startswith(contract.SIGNING_SECRET_PREFIX):
                raise SettingsError(f"{name}: secret #{position} does not start with whsec_")
            try:
                secret_key(scheme, secret)
            except ValueError:
                raise SettingsError(
                    f"{name}: secret #{position} is not whsec_ followed by base64"
                ) from None
        return secrets
