"""Commands that talk to Rivya: submit, reconcile, webhooks, doctor; and the sweeper."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import click
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from rivyahooks.commands.wiring import open_database, open_runtime, require_api_key, rivya_client
from rivyahooks.output import (
    EXIT_FAILED,
    Context,
    echo_json,
    fail,
    fail_config,
    parse_since,
    pass_context,
    progress,
    table,
)
from rivyahooks_foundation.settings import EXIT_CONFIG, Settings
from rivyahooks_protocol import contract
from rivyahooks_protocol.client import RivyaClient
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
    task_id = generation.get("id")
    if not isinstance(task_id, str) or not contract.TASK_ID_PATTERN.fullmatch(task_id):
        fail(
            f"Rivya answered with a generation id this service cannot store ({task_id!r:.80})",
            "check RIVYA_API_BASE points at Rivya's API; nothing was recorded here",
        )
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
    """Show the registered endpoints, and which secret verified this service's deliveries.

    Each secret of RIVYA_WEBHOOK_SECRETS is shown by its fingerprint (never its value) with
    the deliveries it verified in the last 24 hours, as the console's overview shows them:
    after a rotation, the old secret can go once its count stops growing.
    """
    settings = ctx.settings
    require_api_key(settings)
    sessions = open_database(settings)
    uses = secret_uses(sessions, settings)
    with rivya_client(settings) as client:
        try:
            endpoints = client.list_webhooks().get("data", [])
        except RivyaError as exc:
            fail(f"Rivya: {exc}", _next_step_for(exc))
    if as_json:
        echo_json({"endpoints": endpoints, "secrets": uses})
        return
    if not endpoints:
        click.echo("no endpoints: register one with `rivya-hooks webhooks register --url ...`")
    for endpoint in endpoints:
        click.echo(
            f"{endpoint.get('id')}  {endpoint.get('status')}  {endpoint.get('url')}  "
            f"failures={endpoint.get('failure_count')}  "
            f"last_success={endpoint.get('last_success_at')}  "
            f"last_failure={endpoint.get('last_failure_at')}"
        )
    click.echo("\ndeliveries verified in the last 24 h, by secret (RIVYA_WEBHOOK_SECRETS):")
    rows = [
        [
            f"#{use['position']}" if use["position"] else "no longer set",
            use["fingerprint"] or "-",
            use["deliveries"],
            use["last_seen"],
        ]
        for use in uses
    ]
    click.echo(table(rows, ["secret", "fingerprint", "deliveries", "last verified"]))


def secret_uses(sessions: sessionmaker[Session], settings: Settings) -> list[dict[str, Any]]:
    """Return each configured secret's (and each former one's) verified deliveries, last 24 h.

    The counts the console's overview shows: stored webhook events by the fingerprint of the
    secret that verified them.
    """
    from receiver.console.figures import overview
    from rivyahooks_protocol.signatures import fingerprint

    configured = tuple(fingerprint(secret) for secret in settings.webhook_secrets)
    with sessions() as session:
        figures = overview(session, utcnow(), configured)
    seen = {use.fingerprint: use for use in figures.secrets}
    uses: list[dict[str, Any]] = [
        {
            "position": position,
            "fingerprint": fp,
            "deliveries": seen[fp].deliveries if fp in seen else 0,
            "last_seen": seen[fp].last_seen if fp in seen else None,
        }
        for position, fp in enumerate(configured, start=1)
    ]
    uses += [
        {
            "position": None,
            "fingerprint": use.fingerprint,
            "deliveries": use.deliveries,
            "last_seen": use.last_seen,
        }
        for use in figures.secrets
        if use.position is None
    ]
    return uses


def _choose_endpoint(client: RivyaClient, endpoint_id: str | None) -> dict[str, Any]:
    """Return the endpoint to work on: the one named, or the only active one."""
    try:
        if endpoint_id:
            return dict(client.get_webhook(endpoint_id))
        endpoints = client.list_webhooks().get("data", [])
    except RivyaError as exc:
        fail(f"Rivya: {exc}", _next_step_for(exc))
    active = [e for e in endpoints if e.get("status") == "active"]
    if not active:
        fail(
            "no active endpoint is registered at Rivya",
            "register one with `rivya-hooks webhooks register --url ...`",
        )
    if len(active) > 1:
        ids = ", ".join(str(e.get("id")) for e in active)
        fail_config(
            f"{len(active)} active endpoints are registered ({ids})",
            "choose one with --endpoint ID (`rivya-hooks webhooks status` lists them)",
        )
    return dict(active[0])


ENDPOINT_OPTION = click.option(
    "--endpoint",
    "endpoint_id",
    help="Endpoint id (whend_...); default: the only active endpoint.",
)


@webhooks.command("rotate")
@ENDPOINT_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def rotate(ctx: Context, endpoint_id: str | None, as_json: bool) -> None:
    """Ask Rivya for a new signing secret; print it once, and what to set next.

    Deliveries are signed with the new secret from now on: set it first in
    RIVYA_WEBHOOK_SECRETS, keep the old one after it until `rivya-hooks webhooks status`
    shows the old one verifies nothing any more, then remove it.
    """
    from rivyahooks_protocol.signatures import fingerprint

    settings = ctx.settings
    with rivya_client(settings) as client:
        endpoint = _choose_endpoint(client, endpoint_id)
        try:
            rotated = client.rotate_webhook_secret(str(endpoint["id"]))
        except RivyaError as exc:
            fail(f"Rivya refused the rotation: {exc}", _next_step_for(exc))
    secret = rotated.get("signing_secret")
    if not isinstance(secret, str) or not secret:
        fail(
            "Rivya answered the rotation without a signing secret",
            "rotate again, or rotate it in Rivya's dashboard",
        )
    rotated_at = utcnow().isoformat(timespec="seconds")
    new = fingerprint(secret)
    old = [fingerprint(s) for s in settings.webhook_secrets]
    steps = [
        "set RIVYA_WEBHOOK_SECRETS to the new secret first and the current one(s) after it: "
        'RIVYA_WEBHOOK_SECRETS="<new secret>,$RIVYA_WEBHOOK_SECRETS"',
        "restart the web role (every web process, or `rivya-hooks serve`); until it runs with "
        "the new secret, deliveries fail verification and Rivya retries them",
        f"run `rivya-hooks webhooks test`, then watch `rivya-hooks webhooks status`: the new "
        f"secret is fingerprint {new}; once the old one ({', '.join(old) or 'none set'}) has "
        f"verified nothing since {rotated_at}, remove it from RIVYA_WEBHOOK_SECRETS",
    ]
    if as_json:
        echo_json(
            {
                "endpoint_id": endpoint["id"],
                "signing_secret": secret,
                "fingerprint": new,
                "previous_fingerprints": old,
                "rotated_at": rotated_at,
                "next": steps,
            }
        )
        return
    click.echo(f"endpoint {endpoint['id']} ({endpoint.get('url')}): signing secret rotated")
    click.echo("new signing secret (shown once, store it now):")
    click.echo(f"  {secret}")
    click.echo("next:")
    for number, step in enumerate(steps, start=1):
        click.echo(f"  {number}. {step}")


# After Rivya says a delivery succeeded, how long the event may take to be visible here.
COMMIT_GRACE_SECONDS = 3.0
POLL_SECONDS = 0.5


@webhooks.command("test")
@ENDPOINT_OPTION
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=30,
    show_default=True,
    help="Seconds to wait for the test event to arrive here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def webhooks_test(ctx: Context, endpoint_id: str | None, timeout: float, as_json: bool) -> None:
    """Ask Rivya to send a test event; wait until it arrives here, verified (exit 0).

    Exit 1 says what was seen instead: nothing arrived, this service rejected the signature
    (with the fingerprints it tried), or Rivya delivered to a URL that is not this service.
    """
    import time

    from sqlalchemy import select

    from models.events import WebhookEvent

    settings = ctx.settings
    require_api_key(settings)
    sessions = open_database(settings)
    with rivya_client(settings) as client:
        endpoint = _choose_endpoint(client, endpoint_id)
        url = str(endpoint.get("url"))
        try:
            event_id = str(client.send_test_event(str(endpoint["id"]))["id"])
        except (RivyaError, KeyError) as exc:
            fail(f"Rivya did not send a test event: {exc}", "check `rivya-hooks doctor`")
        progress(f"Rivya sends test event {event_id} to {url}")
        began = time.monotonic()
        attempts: list[dict[str, Any]] = []
        delivered_at: float | None = None
        last_said = began
        while True:
            with sessions() as session:
                row = session.scalars(
                    select(WebhookEvent).where(WebhookEvent.event_id == event_id)
                ).one_or_none()
            waited = time.monotonic() - began
            if row is not None:
                _test_passed(settings, event_id, row.secret_fingerprint, waited, as_json)
                return
            try:
                listed = client.list_deliveries(str(endpoint["id"])).get("data", [])
            except RivyaError as exc:
                fail(f"Rivya: {exc}", _next_step_for(exc))
            attempts = [a for a in listed if a.get("event_id") == event_id]
            answered = [a for a in attempts if a.get("status_code") is not None]
            rejected = [a for a in answered if not a.get("succeeded")]
            if rejected or waited >= timeout:
                break
            if delivered_at is None and any(a.get("succeeded") for a in answered):
                delivered_at = time.monotonic()
            if delivered_at is not None and time.monotonic() - delivered_at > COMMIT_GRACE_SECONDS:
                break
            if time.monotonic() - last_said >= 5:
                progress(
                    f"waiting for {event_id}: {waited:.0f} s of {timeout:.0f} s, "
                    f"{len(attempts)} delivery attempt(s) so far"
                )
                last_said = time.monotonic()
            time.sleep(POLL_SECONDS)
    cause, next_step = _test_failure(settings, url, attempts, timeout)
    if as_json:
        echo_json(
            {
                "ok": False,
                "event_id": event_id,
                "cause": cause,
                "next": next_step,
                "attempts": attempts,
            }
        )
        raise SystemExit(EXIT_FAILED)
    fail(f"test event {event_id}: {cause}", next_step)


def _test_passed(
    settings: Settings, event_id: str, used: str | None, waited: float, as_json: bool
) -> None:
    from rivyahooks_protocol.signatures import fingerprint

    configured = [fingerprint(s) for s in settings.webhook_secrets]
    position = configured.index(used) + 1 if used in configured else None
    if as_json:
        echo_json(
            {
                "ok": True,
                "event_id": event_id,
                "fingerprint": used,
                "secret_position": position,
                "seconds": round(waited, 1),
            }
        )
        return
    which = f"secret #{position} (fingerprint {used})" if position else f"fingerprint {used}"
    click.echo(
        f"test event {event_id} arrived after {waited:.1f} s, verified by {which} "
        "of RIVYA_WEBHOOK_SECRETS"
    )


def _test_failure(
    settings: Settings, url: str, attempts: list[dict[str, Any]], timeout: float
) -> tuple[str, str]:
    """Return what the test's delivery attempts say went wrong, and what to do next."""
    from rivyahooks_protocol.signatures import fingerprint

    register = (
        "register this service's public URL ending in /webhooks/rivya "
        "(`rivya-hooks webhooks register --url ...`) and test again"
    )
    if not attempts:
        return (
            f"nothing arrived within {timeout:.0f} s and Rivya recorded no delivery attempt",
            "check the endpoint with `rivya-hooks webhooks status` (is it active?), then test "
            "again with a longer --timeout",
        )
    last = attempts[0]
    status = last.get("status_code")
    if status is None:
        return (
            f"nothing arrived: Rivya could not deliver to {url} ({last.get('error')}, "
            f"{len(attempts)} attempt(s))",
            f"make {url} reachable from Rivya (is the web role running, is the URL public?), "
            f"or {register}",
        )
    if status == 401:
        tried = ", ".join(
            f"#{n} {fingerprint(s)}" for n, s in enumerate(settings.webhook_secrets, start=1)
        )
        return (
            f"this service rejected the signature (HTTP 401): none of RIVYA_WEBHOOK_SECRETS "
            f"verified it (fingerprints tried: {tried or 'none set'})",
            "set the endpoint's secret first in RIVYA_WEBHOOK_SECRETS and restart the web role "
            "(`rivya-hooks webhooks rotate` issues a new one and says how)",
        )
    if last.get("succeeded"):
        return (
            f"Rivya delivered it to {url} (HTTP {status}), but it is not in this service's "
            "database: that URL is another service, or one with another DATABASE_URL",
            register,
        )
    return (
        f"Rivya delivered it to {url} and got HTTP {status}: the URL registered is not this "
        "service's /webhooks/rivya",
        register,
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
