"""The one settings object: the only place that reads the environment.

Every setting is declared once, as a field of `Settings` made with `setting(...)`: its
variable, its default, how its text is read and checked, and the sentence that explains it.
Reading (`from_env`), writing back for child processes (`to_env`), `rivya-hooks settings`
and the README's table all come from those declarations.

Built once when a process starts (`Settings.from_env()`), never at import. Tests build it
directly with the values they need. A bad value raises SettingsError naming the variable,
never echoing a secret value. Every secret variable NAME may instead be given as NAME_FILE,
the path of a file holding the value (Docker and Kubernetes secrets).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from rivyahooks_protocol import contract
from rivyahooks_protocol.signatures import public_key

# The Standard Webhooks spec asks for secrets of 24 to 64 random bytes; fewer is guessable.
MIN_SECRET_BYTES = 24
# A value read from a *_FILE larger than this is not a secret but a mistake (a wrong path).
MAX_SECRET_FILE_BYTES = 64 * 1024
FILE_SUFFIX = "_FILE"


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


# What a process does on a SettingsError: one line with the message, this next step, and
# exit status 2 (the status of bad usage or configuration, as click uses it).
EXIT_CONFIG = 2
FIX_SETTING = "fix that variable (`rivya-hooks settings --help` lists every one), then run again"


Parser = Callable[[str, str], Any]


def setting(env: str, default: Any, meaning: str, parse: Parser, *, secret: bool = False) -> Any:
    """Declare one setting: its variable, default, parser and meaning.

    `secret` keeps the value out of repr() and `rivya-hooks settings`, and lets the value
    come from NAME_FILE.
    """
    return dataclasses.field(
        default=default,
        repr=not secret,
        metadata={"env": env, "meaning": meaning, "parse": parse, "secret": secret},
    )


# --- parsers: (variable name, stripped non-empty text) -> value, or SettingsError ----------


def text(_name: str, value: str) -> str:
    return value


def whole(minimum: int) -> Parser:
    def parse(name: str, value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number") from None
        if number < minimum:
            raise SettingsError(f"{name} must be at least {minimum}")
        return number

    return parse


def positive_number(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number") from None
    if not (number > 0 and math.isfinite(number)):
        raise SettingsError(f"{name} must be a number greater than 0")
    return number


def flag(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false")


# A console token guards replays of every stored event; a short one could be guessed.
MIN_CONSOLE_TOKEN_CHARS = 24


# A random token of MIN_CONSOLE_TOKEN_CHARS characters holds at least this many bits by the
# estimate below; one a person made up (a word repeated, a run of one key) holds far fewer.
MIN_CONSOLE_TOKEN_BITS = 96
HOW_TO_GENERATE = "for example `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"


def token_bits(value: str) -> float:
    """Estimate a token's entropy: its length times log2 of the characters it draws on.

    Counting the distinct characters actually used (not the classes they belong to) is what
    tells `aaaa…` or `passwordpassword…` from a random string of the same length.
    """
    return len(value) * math.log2(max(len(set(value)), 2))


def console_token(name: str, value: str) -> str:
    if len(value) < MIN_CONSOLE_TOKEN_CHARS:
        raise SettingsError(
            f"{name} is too short: use at least {MIN_CONSOLE_TOKEN_CHARS} random characters "
            f"({HOW_TO_GENERATE})"
        )
    if token_bits(value) < MIN_CONSOLE_TOKEN_BITS:
        raise SettingsError(
            f"{name} does not look random (too few different characters for its length): "
            f"use a generated token ({HOW_TO_GENERATE})"
        )
    return value


def session_key_value(name: str, value: str) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise SettingsError(f"{name} must be base64 (`openssl rand -base64 32`)") from None
    if len(key) < 32:
        raise SettingsError(f"{name} must hold at least 32 bytes (`openssl rand -base64 32`)")
    return key


# AES-256: the data keys are exactly this long.
DATA_KEY_BYTES = 32
HOW_TO_GENERATE_DATA_KEY = "`rivya-hooks keys generate`"


def data_keys(name: str, value: str) -> tuple[bytes, ...]:
    # Keys are named by their position, never their value.
    keys = []
    for position, item in enumerate((k.strip() for k in value.split(",") if k.strip()), 1):
        try:
            key = base64.b64decode(item, validate=True)
        except binascii.Error:
            raise SettingsError(
                f"{name}: key #{position} is not base64 ({HOW_TO_GENERATE_DATA_KEY} makes one)"
            ) from None
        if len(key) != DATA_KEY_BYTES:
            raise SettingsError(
                f"{name}: key #{position} decodes to {len(key)} bytes, not {DATA_KEY_BYTES} "
                f"({HOW_TO_GENERATE_DATA_KEY} makes one)"
            )
        if key in keys:
            raise SettingsError(f"{name}: key #{position} repeats an earlier key; keep one")
        keys.append(key)
    return tuple(keys)


def one_of(*allowed: str) -> Parser:
    def parse(name: str, value: str) -> str:
        if value not in allowed:
            raise SettingsError(f"{name} must be one of: {', '.join(allowed)}")
        return value

    return parse


def port(name: str, value: str) -> int:
    number = whole(0)(name, value)
    if number > 65535:
        raise SettingsError(f"{name} must be a port number (0 to 65535)")
    return int(number)


def http_url(name: str, value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise SettingsError(f"{name} must be an http(s) URL")
    return value.rstrip("/")


def host_list(_name: str, value: str) -> tuple[str, ...]:
    # Host names compare case-insensitively, so they are kept lower-case.
    return tuple(item.strip().lower() for item in value.split(",") if item.strip())


def webhook_secrets(name: str, value: str) -> tuple[str, ...]:
    # Secrets keep their case, unlike host names. Messages name a secret by its position,
    # never by its value.
    secrets = tuple(s.strip() for s in value.split(",") if s.strip())
    for position, secret in enumerate(secrets, start=1):
        problem = secret_problem(secret)
        if problem:
            raise SettingsError(f"{name}: secret #{position} {problem}")
    return secrets


def webhook_public_keys(name: str, value: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in value.split(",") if k.strip())
    for position, key in enumerate(keys, start=1):
        try:
            public_key(key)
        except ValueError as exc:
            raise SettingsError(f"{name}: key #{position} {exc}") from None
    return keys


def secret_problem(secret: str) -> str | None:
    """Return why a whsec_ secret is unusable (without quoting it), or None if it is fine."""
    if not secret.startswith(contract.SIGNING_SECRET_PREFIX):
        return "does not start with whsec_"
    encoded = secret.removeprefix(contract.SIGNING_SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return "is not whsec_ followed by base64"
    if len(key) < MIN_SECRET_BYTES:
        return (
            f"is too short: it decodes to {len(key)} bytes, at least {MIN_SECRET_BYTES} "
            "random bytes are needed (use the secret Rivya gave when the endpoint was "
            "registered)"
        )
    return None


def database_url(name: str, value: str) -> str:
    """Check a SQLAlchemy URL and name our driver: postgres:// is PostgreSQL via psycopg."""
    # Heroku, Render and Fly hand out postgres://, which SQLAlchemy no longer accepts.
    if value.startswith("postgres://"):
        value = "postgresql://" + value.removeprefix("postgres://")
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        raise SettingsError(
            f"{name} is not a database URL "
            "(expected postgresql://user@host:5432/name or sqlite:///path)"
        ) from None
    # Read from the URL's text, never by loading the dialect: SQLAlchemy cannot load an
    # unknown one (`mysqlx://`) and would raise its own error instead of naming the variable.
    backend, _, driver = url.drivername.partition("+")
    if backend == "postgresql" and driver in ("", "psycopg", "psycopg2"):
        # psycopg2 is not installed; psycopg 3 speaks the same URLs.
        url = url.set(drivername="postgresql+psycopg")
    elif backend == "sqlite" and driver in ("", "pysqlite"):
        pass
    else:
        raise SettingsError(
            f"{name} names the database driver {url.drivername!r}, which this service does not "
            "support (use postgresql://... or sqlite:///...)"
        )
    if backend == "postgresql" and not url.database:
        raise SettingsError(f"{name} names no database (postgresql://user@host:5432/NAME)")
    return _render(url)


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


@dataclass(frozen=True)
class FileLocation:
    """Results under a directory (STORAGE_URL=file://DIR)."""

    root: Path


@dataclass(frozen=True)
class S3Location:
    """Results in a bucket, under a key prefix that is empty or ends in '/'."""

    bucket: str
    prefix: str


def storage_location(name: str, value: str) -> FileLocation | S3Location:
    """Return where STORAGE_URL (named `name`) keeps results; the one parser of its value."""
    if value.startswith("file://") and value != "file://":
        return FileLocation(Path(value.removeprefix("file://")))
    if value.startswith("s3://"):
        bucket, _, prefix = value.removeprefix("s3://").partition("/")
        prefix = prefix.strip("/")
        if bucket:
            return S3Location(bucket, prefix + "/" if prefix else "")
    raise SettingsError(f"{name} must be file://DIRECTORY or s3://BUCKET[/PREFIX]")


def storage_url(name: str, value: str) -> str:
    storage_location(name, value)
    return value


def api_tokens(_name: str, value: str) -> tuple[str, ...]:
    # Tokens keep their case; `rivya-hooks doctor` flags short ones (guessable).
    return tuple(t.strip() for t in value.split(",") if t.strip())


BROKER_SCHEMES = ("redis://", "rediss://", "sqla+sqlite://")


def broker_url(name: str, value: str) -> str:
    if not value.startswith(BROKER_SCHEMES):
        raise SettingsError(
            f"{name} must start with redis://, rediss:// or sqla+sqlite:// (the embedded broker)"
        )
    return value


# --- the settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    database_url: str = setting(
        "DATABASE_URL",
        "sqlite:///var/rivya-hooks.sqlite3",
        "SQLAlchemy URL; PostgreSQL in production (`postgres://` is accepted)",
        database_url,
        secret=True,
    )
    # Kombu's SQLAlchemy transport: a broker that needs no server, for the demo and laptops.
    # PgBouncer in transaction (or statement) pooling hands each transaction whichever server
    # connection is free, so nothing that lives on a server session survives: psycopg's
    # prepared statements (made after a statement's 5th run) and LISTEN.
    database_pooler: str = setting(
        "DATABASE_POOLER",
        "none",
        "`pgbouncer`: `DATABASE_URL` goes through PgBouncer in transaction pooling "
        "(no prepared statements; the relay polls); `none`: straight to PostgreSQL, or a "
        "session-pooling proxy",
        one_of("none", "pgbouncer"),
    )
    broker_url: str = setting(
        "BROKER_URL",
        "sqla+sqlite:///var/celery-broker.sqlite3",
        "Celery broker; `redis://...` in production",
        broker_url,
        secret=True,
    )
    webhook_secrets: tuple[str, ...] = setting(
        "RIVYA_WEBHOOK_SECRETS",
        (),
        "comma-separated `whsec_...` secrets, all accepted (rotation); required by the receiver",
        webhook_secrets,
        secret=True,
    )
    # For a provider that signs with a private key (Standard Webhooks v1a, ed25519): its
    # public keys verify `v1a,` entries beside the secrets' `v1,` ones.
    webhook_public_keys: tuple[str, ...] = setting(
        "RIVYA_WEBHOOK_PUBLIC_KEYS",
        (),
        "comma-separated `whpk_...` ed25519 public keys whose `v1a` signatures are accepted "
        "beside the secrets' `v1` ones (Standard Webhooks scheme only)",
        webhook_public_keys,
    )
    webhook_scheme: str = setting(
        "RIVYA_WEBHOOK_SCHEME",
        contract.SCHEME_STANDARD,
        "`standard` (Standard Webhooks) or `timestamped-hmac`",
        one_of(*contract.SCHEMES),
    )
    webhook_tolerance_seconds: int = setting(
        "RIVYA_WEBHOOK_TOLERANCE_SECONDS",
        contract.DEFAULT_TOLERANCE_SECONDS,
        "allowed clock difference, past and future",
        whole(1),
    )
    webhook_max_body_bytes: int = setting(
        "RIVYA_WEBHOOK_MAX_BODY_BYTES", 1_048_576, "larger bodies get 413", whole(1024)
    )
    sweep_interval_seconds: int = setting(
        "SWEEP_INTERVAL_SECONDS",
        60,
        "how often beat runs the sweeper (expired leases, messages the broker lost)",
        whole(1),
    )
    # Longest a message may stay unacknowledged before the broker hands it to another
    # worker. Claims (PROCESS_TIME_LIMIT_SECONDS) must end well within it; events `enqueued`
    # for longer than this are published again by the relay.
    task_visibility_timeout_seconds: int = setting(
        "TASK_VISIBILITY_TIMEOUT_SECONDS",
        3600,
        "Redis visibility timeout; events `enqueued` longer are published again",
        whole(10),
    )
    # One attempt's whole budget: Celery's hard time limit (the lease is renewed no longer
    # than it, plus a short grace) and, scaled down, the soft limit and the downloads' total
    # deadline.
    process_time_limit_seconds: int = setting(
        "PROCESS_TIME_LIMIT_SECONDS",
        1800,
        "longest one processing attempt may run (downloads included); below the visibility timeout",
        whole(2),
    )
    # A claim's lease: the worker renews it every third of it while the attempt runs, so a
    # killed worker's event is free again within it and the sweeper (SWEEP_INTERVAL_SECONDS)
    # takes it back at its next run. Short, so recovery takes about two minutes at most.
    process_lease_seconds: int = setting(
        "PROCESS_LEASE_SECONDS",
        45,
        "a claim's lease, renewed every third of it while the attempt runs; a killed worker's "
        "event is taken back by the next sweep after it lapses",
        whole(3),
    )
    process_max_attempts: int = setting(
        "PROCESS_MAX_ATTEMPTS", 8, "attempts before an event is `dead`", whole(1)
    )
    # First delay between processing attempts; it doubles per attempt (with jitter).
    process_retry_base_seconds: float = setting(
        "PROCESS_RETRY_BASE_SECONDS",
        2.0,
        "first retry delay of processing; doubles per attempt",
        positive_number,
    )
    # On PostgreSQL the relay is woken by NOTIFY and polls only as a fallback (and for retries
    # that fall due); SQLite has no notifications, so there it polls at most every 0.25 s.
    relay_poll_seconds: float = setting(
        "RELAY_POLL_SECONDS",
        1.0,
        "longest the relay waits before looking for due events (SQLite: at most 0.25)",
        positive_number,
    )
    # `auto` listens unless DATABASE_POOLER says it cannot, and checks that a notification
    # comes back: one that never does (an unannounced pooler) means polling.
    relay_listen: str = setting(
        "RELAY_LISTEN",
        "auto",
        "`auto`: the relay is woken by PostgreSQL's NOTIFY when that works through "
        "`DATABASE_URL`, else polls every `RELAY_POLL_SECONDS`; `on`: always LISTEN; `off`: "
        "always poll",
        one_of("auto", "on", "off"),
    )
    rivya_api_base: str = setting(
        "RIVYA_API_BASE", contract.DEFAULT_API_BASE, "Rivya's base URL", http_url
    )
    rivya_api_key: str = setting(
        "RIVYA_API_KEY",
        "",
        "`rvya_sk_...`; sent only to `RIVYA_API_BASE`; required to process",
        text,
        secret=True,
    )
    rivya_http_timeout_seconds: float = setting(
        "RIVYA_HTTP_TIMEOUT_SECONDS",
        10.0,
        "timeout of API calls and downloads",
        positive_number,
    )
    rivya_max_attempts: int = setting(
        "RIVYA_MAX_ATTEMPTS",
        5,
        "attempts of one API call (429, 5xx, network errors)",
        whole(1),
    )
    download_allowed_hosts: tuple[str, ...] = setting(
        "RIVYA_DOWNLOAD_ALLOWED_HOSTS",
        (),
        "hosts allowed despite a private address or plain http",
        host_list,
    )
    download_max_bytes: int = setting(
        "RIVYA_DOWNLOAD_MAX_BYTES", 8 * 1024**3, "largest result file accepted", whole(1)
    )
    storage_url: str = setting(
        "STORAGE_URL",
        "file://var/results",
        "where result files are stored: `file://DIR`, or `s3://BUCKET/PREFIX` for S3 and "
        "S3-compatible stores (endpoint and credentials from the usual `AWS_*` variables)",
        storage_url,
    )
    # S3 accepts parts of 5 MiB to 5 GiB, at most 10,000 per object.
    storage_part_bytes: int = setting(
        "STORAGE_PART_BYTES",
        16 * 1024 * 1024,
        "object storage: bytes per multipart upload part, held in memory by each download "
        "(at least 5 MiB)",
        whole(5 * 1024 * 1024),
    )
    # The floor a file storage keeps free: where results share a disk with PostgreSQL, the
    # database needs room for its WAL, or the receiver cannot store deliveries and answers
    # 503. A download whose announced size would go below it is not started (a disk-full
    # retry, later); 1 GiB is a few minutes of WAL at a busy rate.
    storage_min_free_bytes: int = setting(
        "STORAGE_MIN_FREE_BYTES",
        1024**3,
        "file storage: bytes that must stay free on the result disk after a download; one "
        "that would leave less is not started and is retried later",
        whole(0),
    )
    reconcile_interval_seconds: int = setting(
        "RECONCILE_INTERVAL_SECONDS", 300, "how often beat runs the reconciler", whole(1)
    )
    # How late Rivya may write an event (its created_at behind events already listed) and
    # still be found: the deep pass re-reads this far behind where the last one started.
    reconcile_overlap_seconds: int = setting(
        "RECONCILE_OVERLAP_SECONDS",
        300,
        "how far behind the checkpoint the event log is re-read by a deep pass",
        whole(0),
    )
    # Runs in between stop at the first page of events already stored (a page or two in a
    # steady state) instead of re-reading the whole overlap every time.
    reconcile_deep_interval_seconds: int = setting(
        "RECONCILE_DEEP_INTERVAL_SECONDS",
        1800,
        "how often a reconcile run re-reads the whole overlap, for events Rivya wrote late",
        whole(0),
    )
    reconcile_poll_after_seconds: int = setting(
        "RECONCILE_POLL_AFTER_SECONDS",
        600,
        "age after which an unfinished generation is polled",
        whole(0),
    )
    # Unset keeps that API closed rather than open to anyone who can reach the web process.
    results_api_tokens: tuple[str, ...] = setting(
        "RESULTS_API_TOKENS",
        (),
        "comma-separated bearer tokens of the results API, all accepted (rotation); "
        "none: the API is closed",
        api_tokens,
        secret=True,
    )
    # The single token of earlier versions keeps working, as one more accepted token.
    results_api_token: str = setting(
        "RESULTS_API_TOKEN",
        "",
        "one more accepted token (earlier configurations); prefer `RESULTS_API_TOKENS`",
        text,
        secret=True,
    )
    # Either token opens the operator console at /console/; with neither it answers 404.
    console_admin_token: str = setting(
        "CONSOLE_ADMIN_TOKEN",
        "",
        "token of the operator console at `/console/` (may replay); unset with "
        "`CONSOLE_READONLY_TOKEN`: the console is closed (404)",
        console_token,
        secret=True,
    )
    console_readonly_token: str = setting(
        "CONSOLE_READONLY_TOKEN",
        "",
        "token of the operator console that may look but not replay",
        console_token,
        secret=True,
    )
    # Unset: a random key made once and kept in the database. Set it to share one key
    # between deployments that share sessions, or to end every session at once by changing it.
    console_session_key: bytes | None = setting(
        "CONSOLE_SESSION_KEY",
        None,
        "base64 key (32 bytes or more) signing the console's session cookie; unset: a random "
        "key made once and kept in the database",
        session_key_value,
        secret=True,
    )
    # Unset: bodies, headers and the console's secrets are stored in plain text, as before.
    data_encryption_keys: tuple[bytes, ...] = setting(
        "DATA_ENCRYPTION_KEYS",
        (),
        "comma-separated base64 keys (32 bytes each, `rivya-hooks keys generate`) encrypting "
        "stored webhook bodies, headers and the console's secrets (AES-256-GCM): the first "
        "encrypts, all decrypt (rotation: put the new key first, run `rivya-hooks keys "
        "rotate`, then drop the old one); unset: stored in plain text",
        data_keys,
        secret=True,
    )
    console_session_hours: float = setting(
        "CONSOLE_SESSION_HOURS",
        12.0,
        "a console session ends this long after its login, however active it was",
        positive_number,
    )
    # X-Forwarded-For names the client only when the request came from a proxy trusted
    # here; from anyone else it is whatever the client wrote. Loopback: the local nginx.
    trusted_proxies: tuple[str, ...] = setting(
        "TRUSTED_PROXIES",
        ("127.0.0.1", "::1"),
        "addresses of proxies whose X-Forwarded-For names the client (the console's login "
        "limit counts attempts per client)",
        host_list,
    )
    # Behind a TLS-terminating proxy the web process sees plain http from 127.0.0.1, just as
    # in local development, so the request cannot tell the two apart: this setting does.
    console_secure_cookie: bool = setting(
        "CONSOLE_SECURE_COOKIE",
        True,
        "mark the console's session cookie `Secure` (HTTPS only); `false` only for local "
        "development over plain http",
        flag,
    )
    results_file_delivery: str = setting(
        "RESULTS_FILE_DELIVERY",
        "redirect",
        "object storage only: `redirect` to a signed URL, or `proxy` the bytes through the "
        "web process (file storage always streams)",
        one_of("redirect", "proxy"),
    )
    results_signed_url_seconds: int = setting(
        "RESULTS_SIGNED_URL_SECONDS",
        300,
        "lifetime of the signed URLs the file endpoint redirects to",
        whole(10),
    )
    # Each long-poll holds one of the web process's WEB_THREADS threads for up to `wait`
    # seconds; past this many waiters a request answers at once instead of waiting.
    results_feed_max_waiters: int = setting(
        "RESULTS_FEED_MAX_WAITERS",
        2,
        "long-polls of `GET /results/feed` one web process holds at once; more answer at once",
        whole(0),
    )
    log_level: str = setting(
        "LOG_LEVEL",
        "INFO",
        "`DEBUG`, `INFO`, `WARNING` or `ERROR`",
        one_of("DEBUG", "INFO", "WARNING", "ERROR"),
    )
    # JSON by default: production logs go to a collector that parses them; people running
    # the service by hand set `console`.
    log_format: str = setting(
        "LOG_FORMAT",
        "json",
        "`json` (one object per line) or `console` (for people)",
        one_of("json", "console"),
    )
    # Unset keeps the web role's /metrics closed, as with the results API.
    metrics_token: str = setting(
        "METRICS_TOKEN",
        "",
        "bearer token of the web role's `GET /metrics`; unset: it answers 404",
        text,
        secret=True,
    )
    metrics_address: str = setting(
        "METRICS_ADDRESS",
        "127.0.0.1",
        "address the worker's, outbound's, relay's and beat's metrics servers listen on "
        "(`0.0.0.0` in containers)",
        text,
    )
    worker_metrics_port: int = setting(
        "WORKER_METRICS_PORT",
        9101,
        "port of the worker's `/metrics`; `0`: not served",
        port,
    )
    # A port of its own: the outbound role is a second Celery worker, often on the same host.
    outbound_metrics_port: int = setting(
        "OUTBOUND_METRICS_PORT",
        9104,
        "port of the outbound role's `/metrics` (its deliveries' tasks); `0`: not served",
        port,
    )
    relay_metrics_port: int = setting(
        "RELAY_METRICS_PORT",
        9103,
        "port of the relay's `/metrics` (publishes, lag); `0`: not served",
        port,
    )
    beat_metrics_port: int = setting(
        "BEAT_METRICS_PORT",
        9102,
        "port of beat's `/metrics` (with the database gauges); `0`: not served",
        port,
    )
    # Counting by status touches an index per status: cheap, but not on every scrape.
    metrics_database_interval_seconds: int = setting(
        "METRICS_DATABASE_INTERVAL_SECONDS",
        30,
        "at most how often beat recomputes the database gauges",
        whole(1),
    )
    metrics_dir: str = setting(
        "METRICS_DIR",
        "",
        "where each web, worker, outbound and beat start makes its own directory of metric files "
        "(none: the system's temporary directory)",
        text,
    )
    # Rivya retries for 3 days and its event log keeps 30: an event finished longer ago
    # than both can come back only as a duplicate, which its tombstone still answers.
    retention_events_days: int = setting(
        "RETENTION_EVENTS_DAYS",
        30,
        "finished events older than this lose their body and row (an id-only tombstone "
        "stays), and the console's delivery counts and the outbound messages whose "
        "deliveries all finished of that age go; `0`: kept forever",
        whole(0),
    )
    retention_results_days: int = setting(
        "RETENTION_RESULTS_DAYS",
        0,
        "finished generations older than this lose their stored files and rows; `0`: kept forever",
        whole(0),
    )
    retention_interval_seconds: int = setting(
        "RETENTION_INTERVAL_SECONDS", 3600, "how often beat runs the purge", whole(60)
    )
    # Outbound webhooks (`rivya-hooks apps`): what pushing results to apps may do.
    outbound_allowed_hosts: tuple[str, ...] = setting(
        "OUTBOUND_ALLOWED_HOSTS",
        (),
        "app endpoint hosts allowed despite a private address or plain http",
        host_list,
    )
    outbound_timeout_seconds: int = setting(
        "OUTBOUND_TIMEOUT_SECONDS",
        15,
        "an app endpoint must answer 2xx within this; later is a failed attempt",
        whole(1),
    )
    # Each message in flight to a slow endpoint holds a sending thread for up to the timeout.
    outbound_max_in_flight: int = setting(
        "OUTBOUND_MAX_IN_FLIGHT",
        2,
        "messages in flight to one app endpoint at once",
        whole(1),
    )
    outbound_secret_grace_hours: int = setting(
        "OUTBOUND_SECRET_GRACE_HOURS",
        24,
        "after `apps rotate-secret`, the old secret signs beside the new one this long",
        whole(0),
    )
    outbound_disable_after_hours: int = setting(
        "OUTBOUND_DISABLE_AFTER_HOURS",
        120,
        "an app endpoint failing every attempt this long is disabled",
        whole(1),
    )
    public_base_url: str = setting(
        "PUBLIC_BASE_URL",
        "",
        "the URL apps reach this service at (`https://hooks.example.com`): output links in "
        "pushed messages start with it; unset: they are paths",
        http_url,
    )
    # The standard OpenTelemetry variable; the exporter reads the other OTEL_* ones itself.
    otel_exporter_otlp_endpoint: str = setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "",
        "OTLP/HTTP collector for traces (needs the `otel` extra); unset: no traces",
        http_url,
    )
    # Fault testing only (see rivyahooks_foundation/faultpoints.py); unset in every real deployment.
    fault_points_dir: str = setting(
        "FAULT_POINTS_DIR",
        "",
        "fault testing only: directory of armed fault points; unset disables them",
        text,
    )

    @property
    def transaction_pooling(self) -> bool:
        """Return True when DATABASE_URL leads to a pooler that shares server sessions."""
        return self.database_pooler == "pgbouncer"

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed (tests and the demo use it)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the environment, validating every variable."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for variable in VARIABLES:
            raw = _raw_value(env, variable)
            if raw is not None:
                values[variable.field] = variable.parse(variable.name, raw)
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """Return the environment that rebuilds these settings in a child process."""
        return {
            v.name: v.format(getattr(self, v.field))
            for v in VARIABLES
            if getattr(self, v.field) is not None
        }

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
                "RIVYA_API_KEY is not set: processing, reconcile and submit call Rivya's API. "
                "Create a key in the Rivya dashboard and export RIVYA_API_KEY."
            )
        return self.rivya_api_key

    def results_tokens(self) -> tuple[str, ...]:
        """Return every accepted results API token."""
        single = (self.results_api_token,) if self.results_api_token else ()
        return self.results_api_tokens + single

    def storage_location(self) -> FileLocation | S3Location:
        """Return where STORAGE_URL keeps results."""
        return storage_location("STORAGE_URL", self.storage_url)

    def storage_root(self) -> Path:
        """Return the directory of a file:// STORAGE_URL."""
        location = self.storage_location()
        if not isinstance(location, FileLocation):
            raise SettingsError("STORAGE_URL must start with file://")
        return location.root


@dataclass(frozen=True)
class Variable:
    """One environment variable, as its Settings field declares it."""

    name: str
    field: str
    default: Any
    meaning: str
    parse: Parser
    secret: bool

    def format(self, value: Any) -> str:
        """Return `value` as the variable's text (lists comma-separated, flags true/false)."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, bytes):
            return base64.b64encode(value).decode()
        if isinstance(value, tuple):
            return ",".join(self.format(item) for item in value)
        return str(value)

    def shown_default(self) -> str:
        """Return the default as the documentation shows it."""
        if self.default in ((), "", None):
            return "(none)"
        return self.format(self.default)


def _variables() -> Iterator[Variable]:
    for spec in dataclasses.fields(Settings):
        meta = spec.metadata
        yield Variable(
            name=meta["env"],
            field=spec.name,
            default=spec.default,
            meaning=meta["meaning"],
            parse=meta["parse"],
            secret=meta["secret"],
        )


# Every variable, in declaration order: the table the rest of the code reads.
VARIABLES: tuple[Variable, ...] = tuple(_variables())


def _raw_value(env: Mapping[str, str], variable: Variable) -> str | None:
    """Return the variable's stripped text (from NAME or, for secrets, NAME_FILE), or None."""
    value = _stripped(env.get(variable.name))
    if not variable.secret:
        return value
    file_name = variable.name + FILE_SUFFIX
    path = _stripped(env.get(file_name))
    if path is None:
        return value
    if value is not None:
        raise SettingsError(f"{variable.name} and {file_name} are both set; keep one")
    try:
        with open(path, "rb") as handle:
            content = handle.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise SettingsError(f"{file_name}: cannot read the file ({exc.strerror})") from None
    if len(content) > MAX_SECRET_FILE_BYTES:
        raise SettingsError(f"{file_name}: the file is larger than {MAX_SECRET_FILE_BYTES} bytes")
    try:
        decoded = content.decode("utf-8")
    except UnicodeDecodeError:
        raise SettingsError(f"{file_name}: the file is not UTF-8 text") from None
    return _stripped(decoded)


def _stripped(value: str | None) -> str | None:
    if value is None or value.strip() == "":
        return None
    return value.strip()


def markdown_table() -> str:
    """Return the README's table of every variable."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for variable in VARIABLES:
        default = variable.shown_default()
        if default != "(none)":
            default = f"`{default}`"
        suffix = f" (or `{variable.name}{FILE_SUFFIX}`)" if variable.secret else ""
        lines.append(f"| `{variable.name}`{suffix} | {default} | {variable.meaning} |")
    return "\n".join(lines)


def early_value(field: str, environ: Mapping[str, str] | None = None) -> Any:
    """Return one setting's value, or its default when it is unset or invalid.

    For what a process must decide before its settings are checked (how to log, where its
    metric files go), so that the check's own failure is still logged the configured way.
    The full check reports an invalid value; this never raises.
    """
    env = os.environ if environ is None else environ
    variable = next(v for v in VARIABLES if v.field == field)
    try:
        raw = _raw_value(env, variable)
        return variable.default if raw is None else variable.parse(variable.name, raw)
    except SettingsError:
        return variable.default
