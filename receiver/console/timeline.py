"""One event's history as the console shows it: what happened, when, and who acted.

Built from the event row (received, published by the relay, finished), its rows in
`event_attempts` (each attempt's start, end, outcome, error, worker and retry time) and the
operator actions on it, in time order.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.events import AttemptOutcome, EventAttempt, EventStatus, WebhookEvent
from models.operator_actions import OperatorAction
from receiver.console.redact import redact_text

FINISHED = {
    EventStatus.PROCESSED: "processed",
    EventStatus.IGNORED: "ignored (nothing to do)",
    EventStatus.DEAD: "dead",
}
ENDED = {
    AttemptOutcome.PROCESSED: ("processed", "done"),
    AttemptOutcome.IGNORED: ("ignored (nothing to do)", "done"),
    AttemptOutcome.FAILED: ("failed", "error"),
    AttemptOutcome.DEAD: ("failed for good", "error"),
    AttemptOutcome.EXPIRED: ("lost: its lease expired", "error"),
}
# Replays can add attempts without end; a page shows the latest ones.
MAX_ATTEMPTS_SHOWN = 100
MAX_ACTIONS_SHOWN = 100


@dataclass(frozen=True)
class Step:
    at: dt.datetime | None
    what: str
    detail: str = ""
    kind: str = "info"  # info, error, operator, done


def timeline(session: Session, event: WebhookEvent) -> list[Step]:
    """Return the event's steps in time order (steps without a time last)."""
    steps = [
        Step(
            event.received_at,
            f"received via {event.source.value}",
            f"verified by secret {event.secret_fingerprint}" if event.secret_fingerprint else "",
        )
    ]
    if event.status is EventStatus.QUARANTINED:
        steps.append(
            Step(event.received_at, "quarantined", redact_text(event.status_reason), "error")
        )
    attempts = _latest_attempts(session, event.event_id)
    if event.enqueued_at:
        # The row keeps only the latest publish; each attempt shows when a worker took it.
        steps.append(
            Step(
                event.enqueued_at,
                "published by the relay",
                "the latest publish" if len(attempts) > 1 else "",
            )
        )
    if attempts and attempts[0].number > 1:
        steps.append(
            Step(attempts[0].started_at, f"{attempts[0].number - 1} earlier attempt(s) not shown")
        )
    last_error = None
    for attempt in attempts:
        steps.extend(_attempt_steps(event, attempt))
        last_error = attempt.error or last_error
    if event.last_error and not attempts:
        # Written before attempts were recorded one by one: only the latest error is known.
        steps.append(
            Step(None, "last recorded error", redact_text(event.last_error), "error"),
        )
    if event.finished_at and event.status in FINISHED:
        reason = "" if event.status_reason == last_error else redact_text(event.status_reason)
        steps.append(
            Step(
                event.finished_at,
                FINISHED[event.status],
                reason,
                "error" if event.status is EventStatus.DEAD else "done",
            )
        )
    for action in session.scalars(
        select(OperatorAction)
        .where(OperatorAction.event_id == event.event_id)
        .order_by(OperatorAction.at.desc(), OperatorAction.id.desc())
        .limit(MAX_ACTIONS_SHOWN)
    ):
        steps.append(
            Step(
                action.at,
                f"{action.action} by {action.role} (token {action.token_fingerprint})",
                redact_text(action.detail),
                "operator",
            )
        )
    never = dt.datetime.max.replace(tzinfo=dt.UTC)
    # A stable sort: steps written at the same moment keep the order they were added in.
    return sorted(steps, key=lambda step: step.at or never)


def _latest_attempts(session: Session, event_id: str) -> list[EventAttempt]:
    latest = session.scalars(
        select(EventAttempt)
        .where(EventAttempt.event_id == event_id)
        .order_by(EventAttempt.number.desc())
        .limit(MAX_ATTEMPTS_SHOWN)
    )
    return list(reversed(latest.all()))


def _attempt_steps(event: WebhookEvent, attempt: EventAttempt) -> list[Step]:
    started = f"on {attempt.worker}"
    if attempt.finished_at is None and event.status is EventStatus.PROCESSING:
        lease = event.lease_expires_at
        started += ", running"
        if lease:
            started += f"; its lease ends {lease.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
    steps = [Step(attempt.started_at, f"attempt {attempt.number} started", started)]
    if attempt.finished_at is None or attempt.outcome is None:
        return steps
    what, kind = ENDED[attempt.outcome]
    detail = redact_text(attempt.error)
    if attempt.retry_at:
        retry = f"next attempt due {attempt.retry_at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
        detail = f"{detail}\n{retry}" if detail else retry
    steps.append(Step(attempt.finished_at, f"attempt {attempt.number} {what}", detail, kind))
    return steps
