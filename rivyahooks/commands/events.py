"""Commands on stored events: list, show, audit, replay, stats."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import select
from sqlalchemy.orm import defer

from models.db import count_by
from models.events import EventAttempt, EventSource, EventStatus, WebhookEvent
from models.generations import Generation, GenerationOutput
from models.inbox import oldest_unfinished_event
from models.replay import apply_replay, plan_replay
from rivyahooks.commands.wiring import open_database
from rivyahooks.output import Context, echo_json, fail, parse_since, pass_context, table

if TYPE_CHECKING:
    from models.audit import AuditReport

STATUS = click.Choice([s.value for s in EventStatus])
# Larger lists belong in SQL or `--json` pages, not one terminal screen.
MAX_LIST_LIMIT = 10_000


def _event_row(event: WebhookEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "type": event.event_type,
        "task_id": event.task_id,
        "source": event.source.value,
        "status": event.status.value,
        "status_reason": event.status_reason,
        "attempts": event.attempts,
        "last_error": event.last_error,
        "received_at": event.received_at,
        "next_attempt_at": event.next_attempt_at,
        "enqueued_at": event.enqueued_at,
        "lease_expires_at": event.lease_expires_at,
        "started_at": event.started_at,
        "finished_at": event.finished_at,
        "updated_at": event.updated_at,
    }


@click.group()
def events() -> None:
    """Inspect stored events."""


@events.command("list")
@click.option("--status", type=STATUS, help="Only events in this status.")
@click.option("--since", help="Only events received after this ISO-8601 time.")
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_LIST_LIMIT),
    default=50,
    show_default=True,
    help="At most this many, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def list_events(
    ctx: Context, status: str | None, since: str | None, limit: int, as_json: bool
) -> None:
    """List events, newest first."""
    moment = parse_since(since)
    sessions = open_database(ctx.settings)
    # One row more than asked tells whether the list was cut off, without counting them all.
    # A list shows no body: left unread, so none is decrypted.
    query = (
        select(WebhookEvent)
        .options(defer(WebhookEvent.body), defer(WebhookEvent.headers))
        .order_by(WebhookEvent.received_at.desc())
        .limit(limit + 1)
    )
    if status:
        query = query.where(WebhookEvent.status == EventStatus(status))
    if moment is not None:
        query = query.where(WebhookEvent.received_at > moment)
    with sessions() as session:
        rows = [_event_row(e) for e in session.scalars(query)]
    cut_off = len(rows) > limit
    rows = rows[:limit]
    notice = (
        f"showing the newest {limit}; more events match "
        "(raise --limit, or narrow with --status or --since)"
    )
    if as_json:
        echo_json(rows)
        if cut_off:  # stdout stays one JSON document for scripts
            click.echo(f"note: {notice}", err=True)
        return
    if not rows:
        click.echo("no events")
        return
    click.echo(
        table(
            [
                [r["event_id"], r["type"], r["task_id"], r["source"], r["status"], r["attempts"]]
                for r in rows
            ],
            ["event", "type", "task", "source", "status", "attempts"],
        )
    )
    if cut_off:
        click.echo(notice)


@events.command("show")
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def show_event(ctx: Context, event_id: str, as_json: bool) -> None:
    """Show one event's timeline: received, attempts, errors, outputs."""
    sessions = open_database(ctx.settings)
    with sessions() as session:
        event = session.scalars(
            select(WebhookEvent).where(WebhookEvent.event_id == event_id)
        ).one_or_none()
        if event is None:
            fail(f"no event {event_id!r}", "list events with `rivya-hooks events list`")
        document = _event_row(event)
        document["headers"] = event.headers
        document["attempt_history"] = [
            {
                "number": a.number,
                "worker": a.worker,
                "started_at": a.started_at,
                "finished_at": a.finished_at,
                "outcome": None if a.outcome is None else a.outcome.value,
                "error": a.error,
                "retry_at": a.retry_at,
            }
            for a in session.scalars(
                select(EventAttempt)
                .where(EventAttempt.event_id == event.event_id)
                .order_by(EventAttempt.number)
            )
        ]
        generation = None
        if event.task_id:
            generation = session.scalars(
                select(Generation).where(Generation.task_id == event.task_id)
            ).one_or_none()
        document["generation"] = (
            None
            if generation is None
            else {
                "status": generation.status.value,
                "error_code": generation.error_code,
                "error_message": generation.error_message,
                "anomaly": generation.anomaly,
                "final_credits": generation.final_credits,
                "results_stored_at": generation.results_stored_at,
                "outputs": [
                    {
                        "index": o.index,
                        "size_bytes": o.size_bytes,
                        "sha256": o.sha256,
                        "storage_key": o.storage_key,
                        "stored_at": o.stored_at,
                    }
                    for o in session.scalars(
                        select(GenerationOutput)
                        .where(GenerationOutput.task_id == event.task_id)
                        .order_by(GenerationOutput.index)
                    )
                ],
            }
        )
    if as_json:
        echo_json(document)
        return
    click.echo(f"event     {document['event_id']}  ({document['type']}, via {document['source']})")
    click.echo(f"task      {document['task_id']}")
    click.echo(f"status    {document['status']}  {document['status_reason'] or ''}".rstrip())
    click.echo(f"attempts  {document['attempts']}")
    for label in ("received_at", "next_attempt_at", "enqueued_at", "lease_expires_at"):
        if document[label]:
            click.echo(
                f"{label.removesuffix('_at').replace('_', ' '):16} {document[label].isoformat()}"
            )
    for attempt in document["attempt_history"]:
        ended = attempt["finished_at"].isoformat() if attempt["finished_at"] else "running"
        line = (
            f"attempt {attempt['number']}: {attempt['started_at'].isoformat()} .. {ended} "
            f"{attempt['outcome'] or ''} on {attempt['worker']}"
        )
        click.echo(line.rstrip())
        if attempt["error"]:
            click.echo(f"  error: {attempt['error']}")
        if attempt["retry_at"]:
            click.echo(f"  retry at {attempt['retry_at'].isoformat()}")
    if document["last_error"]:
        click.echo(f"last error  {document['last_error']}")
    gen = document["generation"]
    if gen:
        click.echo(
            f"generation {gen['status']}"
            + (f" error={gen['error_code']}" if gen["error_code"] else "")
        )
        for output in gen["outputs"]:
            click.echo(
                f"  output {output['index']}: {output['size_bytes']} bytes "
                f"sha256={output['sha256'][:16]}… {output['storage_key']}"
            )


@events.command("audit")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def audit_events(ctx: Context, as_json: bool) -> None:
    """Check that no event or outbound delivery is stranded or parked; exit 1 naming each.

    Every event must be terminal, or scheduled: due for the relay, on the broker within the
    visibility window, or held by a worker whose lease is live. A scheduled event is parked
    when nothing will act on it within two minutes while the database and broker answer: a
    lease far ahead, a due time long past, or a message the broker lost.

    Every outbound delivery must be delivered, given up with its reason, or scheduled: due
    for the relay, on the broker within the visibility window, or sending under a lease the
    next sweep takes back once it lapses. A due one the relay could publish but has not for
    two minutes is parked.
    """
    from models.audit import audit
    from models.clock import database_now
    from tasks.backlog import broker_messages

    settings = ctx.settings
    sessions = open_database(settings)
    messages = broker_messages(settings)
    with sessions() as session:
        report = audit(
            session,
            database_now(session),
            settings.task_visibility_timeout_seconds,
            messages,
            sweep_seconds=settings.sweep_interval_seconds,
            outbound_max_in_flight=settings.outbound_max_in_flight,
        )
    deliveries = report.deliveries
    if as_json:
        echo_json(
            {
                "ok": report.ok,
                "unfinished_checked": report.checked,
                "unfinished": dict(report.unfinished),
                "broker_messages": report.broker_messages,
                "stranded": [vars(item) for item in report.stranded],
                "parked": [vars(item) for item in report.parked],
                "outbound": {
                    "checked": deliveries.checked,
                    "open": dict(deliveries.open),
                    "stranded": [vars(item) for item in deliveries.stranded],
                    "parked": [vars(item) for item in deliveries.parked],
                },
            }
        )
    else:
        _print_audit(report)
    stranded = _counted(
        ("stranded event(s)", len(report.stranded)),
        ("stranded outbound delivery(ies)", len(deliveries.stranded)),
    )
    parked = _counted(
        ("parked event(s)", len(report.parked)),
        ("parked outbound delivery(ies)", len(deliveries.parked)),
    )
    if stranded:
        parked_count = len(report.parked) + len(deliveries.parked)
        fail(
            stranded + (f", {parked_count} parked" if parked_count else ""),
            "check that beat (the sweeper), the relay and the workers run; "
            "`rivya-hooks sweep` takes back lost ones at once",
        )
    if parked:
        fail(
            f"{parked}: nothing acts on them within two minutes",
            "take each one's next step above",
        )


def _counted(*counts: tuple[str, int]) -> str:
    return ", ".join(f"{n} {what}" for what, n in counts if n)


def _print_audit(report: AuditReport) -> None:
    waiting = ", ".join(f"{n} {status}" for status, n in sorted(report.unfinished.items()))
    click.echo(f"unfinished events checked: {report.checked} ({waiting or 'none'})")
    if report.broker_messages is None:
        click.echo("broker not read: messages it lost are not looked for")
    for item in report.stranded:
        click.echo(f"STRANDED {item.event_id} ({item.status}): {item.why}")
    for parked in report.parked:
        click.echo(f"PARKED {parked.event_id} ({parked.status}): {parked.why}; {parked.next_step}")
    if not report.stranded and not report.parked:
        click.echo("ok: every event is finished or scheduled")
    deliveries = report.deliveries
    open_ = ", ".join(f"{n} {status}" for status, n in sorted(deliveries.open.items()))
    click.echo(
        f"open outbound deliveries checked: {sum(deliveries.open.values())} ({open_ or 'none'})"
    )
    for stuck in deliveries.stranded:
        click.echo(
            f"STRANDED delivery {stuck.delivery_id} ({stuck.message_id} to {stuck.app}, "
            f"{stuck.status}): {stuck.why}"
        )
    for held in deliveries.parked:
        click.echo(
            f"PARKED delivery {held.delivery_id} ({held.message_id} to {held.app}, "
            f"{held.status}): {held.why}; {held.next_step}"
        )
    if deliveries.ok:
        click.echo(
            "ok: every outbound delivery is delivered, scheduled, or given up with its reason"
        )


@click.command()
@click.argument("event_ids", nargs=-1)
@click.option("--status", "from_status", type=STATUS, help="Replay every event in this status.")
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def replay(
    ctx: Context, event_ids: tuple[str, ...], from_status: str | None, dry_run: bool, as_json: bool
) -> None:
    """Re-run stored events through the current code (by id, or all of --status).

    Replayed events are stored as due for the relay, which publishes them: this works with
    the broker down too.
    """
    if bool(event_ids) == bool(from_status):
        raise click.UsageError("give event ids or --status, not both and not neither")
    sessions = open_database(ctx.settings)
    with sessions() as session:
        query = select(WebhookEvent)
        if from_status:
            query = query.where(WebhookEvent.status == EventStatus(from_status))
        else:
            query = query.where(WebhookEvent.event_id.in_(event_ids))
        found = list(session.scalars(query.order_by(WebhookEvent.id)))
    missing = set(event_ids) - {e.event_id for e in found}
    if missing:
        fail(f"no such events: {', '.join(sorted(missing))}")
    plan = [plan_replay(event) for event in found]
    if not dry_run:
        plan = apply_replay(sessions, plan)
    replayed = sum(1 for step in plan if step.moves)
    if as_json:
        echo_json({"dry_run": dry_run, "replayed": replayed, "events": [s.as_dict() for s in plan]})
        return
    verb = "would" if dry_run else "will"
    for step in plan:
        click.echo(
            f"{step.event_id}: {step.before.value} -> {step.after.value} ({verb} {step.action})"
        )
    if dry_run:
        click.echo(f"{replayed} event(s) would be replayed")
    else:
        click.echo(
            f"{replayed} event(s) replayed: stored as due, the relay publishes them "
            "(once the broker is up, if it is down; `rivya-hooks relay` must be running)"
        )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def stats(ctx: Context, as_json: bool) -> None:
    """Counts by status, the oldest unprocessed event, events found only by reconcile."""
    sessions = open_database(ctx.settings)
    with sessions() as session:
        by_status = count_by(session, WebhookEvent.status)
        by_source = count_by(session, WebhookEvent.source)
        oldest_event = oldest_unfinished_event(session)
        oldest = (
            None
            if oldest_event is None
            else (oldest_event.event_id, oldest_event.received_at, oldest_event.status)
        )
    total = sum(by_status.values())
    reconciled = by_source.get(EventSource.RECONCILE, 0)
    counts = {s.value: by_status.get(s, 0) for s in EventStatus}
    document: dict[str, Any] = {
        "events": total,
        "by_status": counts,
        "by_source": {s.value: by_source.get(s, 0) for s in EventSource},
        "found_only_by_reconcile_share": round(reconciled / total, 4) if total else 0.0,
        "oldest_unprocessed": None
        if oldest is None
        else {"event_id": oldest[0], "received_at": oldest[1], "status": oldest[2].value},
    }
    if as_json:
        echo_json(document)
        return
    click.echo(f"events: {total}")
    click.echo(table([[k, v] for k, v in counts.items()], ["status", "count"]))
    click.echo(
        f"found only by reconcile: {reconciled} ({document['found_only_by_reconcile_share']:.1%})"
    )
    if oldest is None:
        click.echo("oldest unprocessed: none")
    else:
        click.echo(
            f"oldest unprocessed: {oldest[0]} ({oldest[2].value} since {oldest[1].isoformat()})"
        )
