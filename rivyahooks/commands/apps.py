"""Commands on the apps results are pushed to: add, list, show, disable, enable, replay, ..."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from rivyahooks.output import (
    Context,
    echo_json,
    fail,
    fail_config,
    parse_since,
    pass_context,
    table,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from models.apps import App

EVENT_TYPES = ("result.ready", "result.failed")


@click.group()
def apps() -> None:
    """Apps that receive results as signed webhooks (Standard Webhooks).

    Each app is an endpoint URL and the event types it wants: `result.ready` (a generation
    succeeded and every output is stored) and `result.failed` (Rivya failed it, or it was
    given up). Messages are retried for about a day; an endpoint failing for days, or
    answering 410 Gone, is disabled.
    """


@contextmanager
def _session(ctx: Context) -> Iterator[Session]:
    from rivyahooks.commands.wiring import open_database

    with open_database(ctx.settings).begin() as session:
        yield session


def _app(session: Session, name: str) -> App:
    from models.apps import find_app

    app = find_app(session, name)
    if app is None:
        fail(f"no app named {name!r}", "`rivya-hooks apps list` shows the apps")
    return app


def _events(value: str) -> list[str]:
    chosen = [item.strip() for item in value.split(",") if item.strip()]
    unknown = [item for item in chosen if item not in EVENT_TYPES]
    if unknown or not chosen:
        raise click.BadParameter(
            f"{', '.join(unknown) or 'none given'}: choose from {', '.join(EVENT_TYPES)}"
        )
    return list(dict.fromkeys(chosen))


def _check_url(ctx: Context, url: str) -> None:
    from rivyahooks_protocol.download import checked_target
    from rivyahooks_protocol.errors import DisallowedURLError

    try:
        checked_target(url, ctx.settings.outbound_allowed_hosts)
    except DisallowedURLError as exc:
        fail_config(
            f"--url {url!r} is refused: {exc}",
            "give an https URL of a public address, or add its host to OUTBOUND_ALLOWED_HOSTS",
        )


@apps.command("add")
@click.argument("name")
@click.option("--url", required=True, help="The app's endpoint; https to a public address.")
@click.option(
    "--events",
    "events_",
    default=",".join(EVENT_TYPES),
    show_default=True,
    help="Comma-separated event types the app receives.",
)
@click.option(
    "--ed25519", is_flag=True, help="Also sign with a new ed25519 key pair (`v1a,` entries)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def add(ctx: Context, name: str, url: str, events_: str, ed25519: bool, as_json: bool) -> None:
    """Add an app; print its signing secret (shown this once) and its id."""
    from sqlalchemy import exists, select

    from models.apps import (
        NAME_PATTERN,
        App,
        describe,
        new_app_id,
        new_secret,
        new_signing_key,
    )
    from models.outbound import skip_history

    if not re.fullmatch(NAME_PATTERN, name):
        raise click.BadParameter(
            "letters, digits, '.', '_' and '-', at most 100, starting with a letter or digit",
            param_hint="NAME",
        )
    events = _events(events_)
    _check_url(ctx, url)
    secret = new_secret()
    with _session(ctx) as session:
        if session.scalar(select(exists().where(App.name == name))):
            fail(f"an app named {name!r} exists", "pick another name, or `apps remove` it first")
        if not session.scalar(select(exists().where(App.id.is_not(None)))):
            # The first app: messages start with what changes from now, not the history.
            skip_history(session)
        app = App(
            id=new_app_id(),
            name=name,
            url=url,
            events=events,
            secret=secret.encode(),
            signing_key=new_signing_key() if ed25519 else None,
            enabled=True,
        )
        session.add(app)
        session.flush()
        shown = {**describe(app), "secret": secret}
    if as_json:
        echo_json(shown)
        return
    click.echo(f"app {name} added ({shown['id']}): {', '.join(events)} to {url}")
    click.echo(f"secret: {secret}")
    if shown["public_key"]:
        click.echo(f"public key: {shown['public_key']}")
    click.echo("the secret is shown only now: give it to the app to verify its messages", err=True)


@apps.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def list_apps(ctx: Context, as_json: bool) -> None:
    """List the apps, whether each is enabled, and what it has not received yet."""
    from models.apps import all_apps, describe
    from models.outbound import backlog_by_app

    with _session(ctx) as session:
        backlog = backlog_by_app(session)
        rows = [{**describe(app), "backlog": backlog.get(app.id, 0)} for app in all_apps(session)]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no apps; add one with `rivya-hooks apps add NAME --url URL`")
        return
    click.echo(
        table(
            [
                [
                    r["name"],
                    "enabled" if r["enabled"] else f"disabled: {r['disabled_reason'] or 'by hand'}",
                    ",".join(r["events"]),
                    r["backlog"],
                    r["url"],
                ]
                for r in rows
            ],
            ["name", "state", "events", "backlog", "url"],
        )
    )


@apps.command("show")
@click.argument("name")
@click.option("--attempts", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def show(ctx: Context, name: str, attempts: int, as_json: bool) -> None:
    """Show an app and its most recent delivery attempts."""
    from models.apps import describe
    from models.outbound import backlog_by_app, recent_attempts

    with _session(ctx) as session:
        app = _app(session, name)
        shown: dict[str, Any] = {
            **describe(app),
            "backlog": backlog_by_app(session).get(app.id, 0),
            "attempts": [
                {
                    "delivery_id": a.delivery_id,
                    "number": a.number,
                    "attempted_at": a.attempted_at.isoformat(),
                    "status_code": a.status_code,
                    "latency_ms": a.latency_ms,
                    "outcome": a.outcome,
                    "error": a.error,
                    "response": a.response_excerpt,
                }
                for a in recent_attempts(session, app.id, attempts)
            ],
        }
    if as_json:
        echo_json(shown)
        return
    for key in (
        "id",
        "name",
        "url",
        "events",
        "enabled",
        "disabled_reason",
        "failing_since",
        "previous_secret_until",
        "public_key",
        "backlog",
    ):
        value = shown[key]
        if value not in (None, []):
            click.echo(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
    if not shown["attempts"]:
        click.echo("no attempts yet")
        return
    click.echo(
        table(
            [
                [
                    a["attempted_at"],
                    a["delivery_id"],
                    a["number"],
                    a["status_code"] or "-",
                    a["latency_ms"],
                    a["outcome"],
                    a["error"] or "",
                ]
                for a in shown["attempts"]
            ],
            ["time", "delivery", "attempt", "status", "ms", "outcome", "error"],
        )
    )


@apps.command("disable")
@click.argument("name")
@pass_context
def disable_app(ctx: Context, name: str) -> None:
    """Stop sending to an app; what it has not received is given up (replay sends it later)."""
    from models.clock import database_now
    from models.outbound import disable_app as disable

    with _session(ctx) as session:
        app = _app(session, name)
        given_up = disable(session, app, "disabled by an operator", database_now(session))
    click.echo(f"app {name} disabled; {given_up} open message(s) given up")


@apps.command("enable")
@click.argument("name")
@pass_context
def enable_app(ctx: Context, name: str) -> None:
    """Send to an app again (new messages; `apps replay` sends what it missed)."""
    from models.apps import enable

    with _session(ctx) as session:
        enable(_app(session, name))
    click.echo(f"app {name} enabled; `rivya-hooks apps replay {name}` sends what it missed")


@apps.command("rotate-secret")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def rotate_secret_command(ctx: Context, name: str, as_json: bool) -> None:
    """Give an app a new secret; the old one keeps signing beside it for the grace period."""
    from models.apps import rotate_secret
    from models.clock import database_now

    grace = dt.timedelta(hours=ctx.settings.outbound_secret_grace_hours)
    with _session(ctx) as session:
        app = _app(session, name)
        secret = rotate_secret(app, database_now(session), grace)
        until = app.previous_secret_until
    if as_json:
        echo_json({"name": name, "secret": secret, "previous_secret_until": until})
        return
    click.echo(f"secret: {secret}")
    click.echo(
        f"the old secret signs too until {until.isoformat() if until else 'now'}: "
        "give the app the new one before then",
        err=True,
    )


@apps.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask.")
@pass_context
def remove(ctx: Context, name: str, yes: bool) -> None:
    """Remove an app with its deliveries and attempts."""
    if not yes:
        click.confirm(f"remove app {name} and its delivery log?", abort=True)
    with _session(ctx) as session:
        app = _app(session, name)
        session.delete(app)
    click.echo(f"app {name} removed")


@apps.command("replay")
@click.argument("name")
@click.option("--since", help="Only messages made at or after this ISO-8601 time.")
@click.option("--failed-only", is_flag=True, help="Only messages that were given up.")
@click.option("--dry-run", is_flag=True, help="Count what would be sent again; change nothing.")
@pass_context
def replay(ctx: Context, name: str, since: str | None, failed_only: bool, dry_run: bool) -> None:
    """Send an app its messages again (same message ids: the app deduplicates)."""
    from models.clock import database_now
    from models.outbound import replay as run

    moment = parse_since(since)
    with _session(ctx) as session:
        app = _app(session, name)
        if not app.enabled and not dry_run:
            fail(f"app {name} is disabled", f"`rivya-hooks apps enable {name}` first")
        count = run(
            session,
            app,
            since=moment,
            failed_only=failed_only,
            now=database_now(session),
            dry_run=dry_run,
        )
    verb = "would send" if dry_run else "sending"
    click.echo(f"{verb} {count} message(s) to {name} again")
