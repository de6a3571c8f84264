"""One event's history as the console shows it: what happened, when, and who acted."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.events import EventStatus, WebhookEvent
from models.operator_actions import OperatorAction
from receiver.console.redact import redact_text

FINISHED = {
    EventStatus.PROCESSED: "processed",
    EventStatus.IGNORED: "ignored (nothing to do)",
    EventStatus.DEAD: "dead",
}


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
    if event.enqueued_at:
        steps.append(Step(event.enqueued_at, "handed to the workers"))
    if event.started_at:
        steps.append(Step(event.started_at, f"attempt {max(event.attempts, 1)} started"))
    if event.last_error:
        # Only the latest error is kept on the event row: a dead event died of it when it
        # finished; otherwise it came from an earlier attempt at a time the row no longer has.
        dead = event.status is EventStatus.DEAD and event.finished_at
        steps.append(
            Step(
                event.finished_at if dead else None,
                "error" if dead else "last recorded error (of an earlier attempt)",
                redact_text(event.last_error),
                "error",
            )
        )
    if event.finished_at and event.status in FINISHED:
        steps.append(
            Step(
                event.finished_at,
                FINISHED[event.status],
                redact_text(event.status_reason),
                "error" if event.status is EventStatus.DEAD else "done",
            )
        )
    for action in session.scalars(
        select(OperatorAction)
        .where(OperatorAction.event_id == event.event_id)
        .order_by(OperatorAction.at, OperatorAction.id)
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
    return sorted(steps, key=lambda step: step.at or never)
