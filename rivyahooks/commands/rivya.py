"""Commands that talk to Rivya: submit, reconcile, webhooks, doctor; and the sweeper."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import click

from models.base import utcnow
from rivyahooks.commands.wiring import open_database, open_runtime, require_api_key, rivya_client
from rivyahooks.output import (
    EXIT_FAILED,
    Context,
    echo_json,
    fail,
    parse_since,
    pass_context,
    progress,
)
from rivyahooks_foundation.settings import EXIT_CONFIG, Settings
from rivyahooks_protocol import contract
from rivyahooks_protocol.errors import RivyaError


def _param(values: tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--param")
        try:
            params[key] = json.loads(raw)  # numbers, booleans and JSON stay typed
        except ValueError:
            params[key] = raw
    return params


@click.command()
@click.option("--model", required=True, help="Rivya model id (see GET /api/v1/models).")
@click.option("--prompt", help="The prompt.")
@click.option("--param", "params", multiple=True, help="Model parameter key=value (repeatable).")
@click.option("--idempotency-key", help="Reuse to retry safely; a new one is made when omitted.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def submit(
    ctx: Context,
    model: str,
    prompt: str | None,
    params: tuple[str, ...],
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Create a generation and record it, so the poller covers it even without an event."""
    from tasks.generation_state import record_submitted

    settings = ctx.settings
    require_api_key(settings)
    sessions = open_database(settings)
    key = idempotency_key or str(uuid.uuid4())
    with rivya_client(settings) as client:
        try:
            generation = client.create_generation(
                model, prompt=prompt, params=_param(params) or None, idempotency_key=key
            )
        except RivyaError as exc:
            fail(f"Rivya refused the generation: {exc}", _next_step_for(exc))
    with sessions.begin() as session:
        record_submitted(session, generation)
    if as_json:
        echo_json({"generation": generation, "idempotency_key": key})
        return
    click.echo(f"submitted {generation['id']} ({generation.get('status')}), idempotency key {key}")


def _next_step_for(exc: RivyaError) -> str:
    if exc.status in (401, 403):
        return "check RIVYA_API_KEY and its scopes"
    if exc.retryable:
        return "retry with the same --idempotency-key"
    return "fix the request (see the message) and submit again"


@click.command()
@click.option("--since", help="Read the event log from this ISO-8601 time, not the checkpoint.")
@click.option("--dry-run", is_flag=True, help="Count what is missing; store nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_context
def reconcile(ctx: Context, since: str | None, dry_run: bool, as_json: bool) -> None:
    """Find events and results that webhooks missed, and store them for the relay."""
    from tasks.reconcile import ReconcileBusy
    from tasks.reconcile import reconcile as run

    moment = parse_since(since)
    runtime = open_runtime(ctx.settings, rivya=True)
    try:
        summary = run(runtime, since=moment, dry_run=dry_run, progress=progress)
    except ReconcileBusy:
        fail("another reconcile is running", "wait for it to finish, then run again")
    except RivyaError as exc:
        fail(f"Rivya: {exc}", _next_step_for(exc))
    if as_json:
        echo_json(summary.as_dict())
        return
    for warning in summary.warnings:
        click.echo(f"warning: {warning}", err=True)
    prefix = "dry run: " if dry_run else ""
    click.echo(
        f"{prefix}pages read {summary.pages_read}, events listed {summary.events_listed}, "
        f"missing here {summary.events_missing}, stored {summary.stored}, "
        f"unusable {summary.unusable}, generations polled {summary.generations_polled}, "
        f"recovered {summary.generations_recovered}"
    )
    if summary.stored and not dry_run:
        click.echo("the relay publishes the stored events (`rivya-hooks relay` must be running)")


@click.command()
@pass_context
def sweep(ctx: Context) -> None:
    """Take back events whose worker or message was lost (beat runs this on a schedule)."""
    from tasks.sweep import sweep as run

    result = run(open_runtime(ctx.settings))
    click.echo(
        f"leases expired {result.leases_expired}, lost messages published again "
        f"{result.messages_lost}"
    )


@click.group()
def webhooks() -> None:
    """Manage the webhook endpoint registered with Rivya."""


@webhooks.command("register")
@click.option("--url", required=True, help="Public HTTPS URL of this service's /webhooks/rivya.")
@click.option("--name", default="rivya-hooks", show_default=True, help="Endpoint name.")
@click.option(
    "--event-type",
    "event_types",
    multiple=True,
    type=click.Choice(sorted(contract.EVENT_TYPES)),
    help="Event types to receive (default: all).",
)
@pass_context
def register(ctx: Context, url: str, name: str, event_types: tuple[str, ...]) -> None:
    """Create the endpoint at Rivya and print its signing secret, once."""
    if not url.rstrip("/").endswith("/webhooks/rivya"):
        click.echo("warning: the receiver listens on /webhooks/rivya; is the URL right?", err=True)
    with rivya_client(ctx.settings) as client:
        try:
            endpoint = client.create_webhook(
                name, url, list(event_types or sorted(contract.EVENT_TYPES))
            )
        except RivyaError as exc:
            fail(f"Rivya refused the endpoint: {exc}", _next_step_for(exc))
    click.echo(f"endpoint {endpoint['id']} registered for {url}")
    click.echo("signing secret (shown once, store it now):")
    click.echo(f"  {endpoint.get('signing_secret')}")
    click.echo(
        "next: set RIVYA_WEBHOOK_SECRETS to this secret (keep the old one beside it, "
        "comma-separated, while rotating) and restart the web role"
    )


@webhooks.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def webhooks_status(ctx: Context, as_json: bool) -> None:
    """Show the registered endpoints and their recent delivery health."""
    with rivya_client(ctx.settings) as client:
        try:
            endpoints = client.list_webhooks().get("data", [])
        except RivyaError as exc:
            fail(f"Rivya: {exc}", _next_step_for(exc))
    if as_json:
        echo_json(endpoints)
        return
    if not endpoints:
        click.echo("no endpoints: register one with `rivya-hooks webhooks register --url ...`")
        return
    for endpoint in endpoints:
        click.echo(
            f"{endpoint.get('id')}  {endpoint.get('status')}  {endpoint.get('url')}  "
            f"failures={endpoint.get('failure_count')}  "
            f"last_success={endpoint.get('last_success_at')}  "
            f"last_failure={endpoint.get('last_failure_at')}"
        )


# Skew beyond this eats into the signature tolerance enough to reject genuine deliveries.
SKEW_WARNING_SECONDS = 30


class Checks:
    """Doctor's findings; a failed configuration check makes the exit status 2, not 1."""

    def __init__(self) -> None:
        self.found: list[dict[str, Any]] = []

    def __call__(
        self, name: str, ok: bool, detail: str, next_step: str | None = None, config: bool = False
    ) -> None:
        self.found.append(
            {
                "check": name,
                "ok": ok,
                "detail": detail,
                "next": None if ok else next_step,
                "configuration": config,
            }
        )

    def exit_status(self) -> int:
        failed = [c for c in self.found if not c["ok"]]
        if any(c["configuration"] for c in failed):
            return EXIT_CONFIG
        return EXIT_FAILED if failed else 0


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def doctor(ctx: Context, as_json: bool) -> None:
    """Check settings, secrets, database, broker, the Rivya key, the endpoint and clock skew.

    Exit status 2 when a setting must change (a missing or weak secret, no API key), 1 when
    a service fails its check.
    """
    check = Checks()
    settings = ctx.settings
    check(
        "settings",
        True,
        f"scheme {settings.webhook_scheme}, {len(settings.webhook_secrets)} webhook secret(s), "
        f"API base {settings.rivya_api_base}",
    )
    _doctor_secrets(settings, check)
    _doctor_database(settings, check)
    _doctor_encryption(settings, check)
    _doctor_broker(settings, check)
    _doctor_rivya(settings, check)
    if as_json:
        echo_json({"ok": check.exit_status() == 0, "checks": check.found})
    else:
        for c in check.found:
            click.echo(f"{'ok  ' if c['ok'] else 'FAIL'} {c['check']}: {c['detail']}")
            if c["next"]:
                click.echo(f"     next: {c['next']}")
    if check.exit_status():
        raise SystemExit(check.exit_status())


# A token shorter than this is guessable enough to matter for an API on the network.
MIN_TOKEN_CHARACTERS = 24


def weakness(key: bytes) -> str | None:
    """Return why a secret's bytes do not look random (without quoting them), or None.

    Random keys of 24 bytes or more all but never repeat half their bytes, nor consist of
    printable text only (a chance of about 1 in 10^10): either means a person made it up.
    """
    if len(set(key)) < len(key) // 2:
        return "repeats most of its bytes"
    if all(32 <= byte < 127 for byte in key):
        return "is printable text, not random bytes"
    return None


def _doctor_secrets(settings: Settings, check: Checks) -> None:
    register = (
        "use the whsec_ secret Rivya generates (`rivya-hooks webhooks register --url ...`, "
        "or rotate the endpoint's secret at Rivya)"
    )
    if not settings.webhook_secrets:
        check(
            "webhook secrets",
            False,
            "RIVYA_WEBHOOK_SECRETS is not set",
            "set RIVYA_WEBHOOK_SECRETS",
            config=True,
        )
    for position, secret in enumerate(settings.webhook_secrets, start=1):
        key = base64.b64decode(secret.removeprefix(contract.SIGNING_SECRET_PREFIX))
        reason = weakness(key)
        check(
            f"webhook secret #{position}",
            reason is None,
            f"RIVYA_WEBHOOK_SECRETS secret #{position} {reason}" if reason else "looks random",
            register,
            config=True,
        )
    named = [
        (f"results API token #{n}", f"RESULTS_API_TOKENS token #{n}", token)
        for n, token in enumerate(settings.results_api_tokens, start=1)
    ]
    if settings.results_api_token:
        named.append(("results API token", "RESULTS_API_TOKEN", settings.results_api_token))
    for name, where, token in named:
        check(
            name,
            len(token) >= MIN_TOKEN_CHARACTERS,
            f"{where} has {len(token)} characters",
            f"use at least {MIN_TOKEN_CHARACTERS} random characters "
            "(`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)",
            config=True,
        )


def _doctor_database(settings: Settings, check: Checks) -> None:
    from models.connectivity import connection_problem, schema_problem
    from models.migrate import head_revision
    from rivyahooks.commands.wiring import open_engine

    engine = open_engine(settings)
    problem = connection_problem(engine) or schema_problem(engine)
    if problem is not None:
        check("database", False, problem.cause, problem.next_step)
    else:
        check("database", True, f"reachable, at revision {head_revision()}")


def _doctor_encryption(settings: Settings, check: Checks) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from models.data_keys import registered_ids
    from models.encryption import Keyring
    from rivyahooks.commands.wiring import open_engine

    keyring = Keyring(settings.data_encryption_keys)
    try:
        with open_engine(settings).connect() as connection:
            used = registered_ids(connection)
    except SQLAlchemyError:
        used = []  # the database check above says why
    missing = [kid for kid in used if kid not in keyring.ids]
    if missing:
        check(
            "encryption at rest",
            False,
            f"stored data is encrypted under key id {missing[0]}, which DATA_ENCRYPTION_KEYS "
            "does not hold",
            "add that key back to DATA_ENCRYPTION_KEYS (every key listed decrypts)",
            config=True,
        )
    elif not keyring.enabled:
        check(
            "encryption at rest",
            True,
            "DATA_ENCRYPTION_KEYS is not set: webhook bodies, headers and the console's "
            "secrets are stored in plain text (`rivya-hooks keys generate` makes a key)",
        )
    else:
        older = [kid for kid in used if kid != keyring.sealing_id]
        check(
            "encryption at rest",
            True,
            f"encrypting under key id {keyring.sealing_id}"
            + (
                f"; rows may still be under {', '.join(older)} (`rivya-hooks keys rotate`)"
                if older
                else ""
            ),
        )


def _doctor_broker(settings: Settings, check: Checks) -> None:
    # The connection the relay and the workers make, with the same transport options.
    from tasks.broker import ping

    try:
        ping(settings, timeout=3)
        check("broker", True, "reachable")
    except Exception as exc:
        check("broker", False, f"unreachable ({type(exc).__name__})", "check BROKER_URL")


def _doctor_rivya(settings: Settings, check: Checks) -> None:
    from tasks.runtime import rivya_client

    if not settings.rivya_api_key:
        check(
            "rivya key",
            False,
            "RIVYA_API_KEY is not set",
            "export RIVYA_API_KEY (or RIVYA_API_KEY_FILE)",
            config=True,
        )
        return
    with rivya_client(settings) as client:
        try:
            balance, server_date = client.credits_with_date()
            check("rivya key", True, f"accepted; {balance.get('current_credits')} credits")
        except RivyaError as exc:
            check("rivya key", False, f"{exc.code} (HTTP {exc.status})", _next_step_for(exc))
            return
        if server_date is not None:
            skew = (utcnow() - server_date).total_seconds()
            check(
                "clock skew",
                abs(skew) <= SKEW_WARNING_SECONDS,
                f"{skew:+.1f} s against Rivya's Date header "
                f"(signature tolerance {settings.webhook_tolerance_seconds} s)",
                "synchronise this host's clock (NTP)",
            )
        else:
            check("clock skew", True, "Rivya sent no Date header; not measured")
        try:
            endpoints = client.list_webhooks().get("data", [])
        except RivyaError as exc:
            check("endpoint", False, f"cannot list endpoints: {exc.code}", _next_step_for(exc))
            return
        active = [e for e in endpoints if e.get("status") == "active"]
        check(
            "endpoint",
            bool(active),
            f"{len(active)} active of {len(endpoints)} registered",
            "register one with `rivya-hooks webhooks register --url ...`",
        )
