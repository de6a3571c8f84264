"""Replay: put stored events back in front of the relay, to run through the current code.

The one plan and the one apply behind every replay an operator asks for, `rivya-hooks replay`
and the console alike. A replay only writes rows: the event becomes `received` and due now,
and the relay publishes it, so it works with the broker down too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.events import EventStatus, WebhookEvent, move
from models.inbox import wake_relay
from rivyahooks_protocol.envelope import parse_envelope

OPERATOR_REASON = "replayed by an operator"


@dataclass(frozen=True)
class ReplayStep:
    """What replaying one event does (or did): its status before and after, and why."""

    event_id: str
    before: EventStatus
    after: EventStatus
    action: str
    # What the current code reads from a quarantined body, stored with the replay.
    envelope: dict[str, str | None] | None = None

    @property
    def moves(self) -> bool:
        """Whether the event goes back to the relay (rather than staying as it is)."""
        return self.after is EventStatus.RECEIVED and self.before is not EventStatus.RECEIVED

    def as_dict(self) -> dict[str, Any]:
        """Return the step as `rivya-hooks replay --json` prints it."""
        document: dict[str, Any] = {
            "event_id": self.event_id,
            "from": self.before.value,
            "to": self.after.value,
            "action": self.action,
        }
        if self.envelope is not None:
            document["envelope"] = self.envelope
        return document


def plan_replay(event: WebhookEvent) -> ReplayStep:
    """Return what replaying `event` would do; change nothing."""
    status = event.status
    if status is EventStatus.PROCESSING:
        return ReplayStep(
            event.event_id,
            status,
            status,
            f"stay: a worker holds it until {event.lease_expires_at}; if that worker died, "
            "the sweeper takes it back then",
        )
    if status is EventStatus.RECEIVED:
        return ReplayStep(event.event_id, status, status, "stay: it already waits for the relay")
    if status is EventStatus.QUARANTINED:
        envelope = parse_envelope(event.body)
        if envelope.problem:
            return ReplayStep(
                event.event_id, status, status, "stay quarantined: " + envelope.problem
            )
        return ReplayStep(
            event.event_id,
            status,
            EventStatus.RECEIVED,
            "be processed: the current code understands it",
            envelope={
                "event_type": envelope.event_type,
                "task_id": envelope.task_id,
                "api_version": envelope.api_version,
            },
        )
    return ReplayStep(
        event.event_id,
        status,
        EventStatus.RECEIVED,
        "be processed again (stored outputs are kept)",
    )


def replay_event(session: Session, step: ReplayStep, reason: str = OPERATOR_REASON) -> ReplayStep:
    """Move the planned event back to the relay in the caller's transaction; return what it did.

    A compare-and-set on the status the plan saw: a move another process made meanwhile
    stands, and the returned step says the event stayed.
    """
    if not step.moves:
        return step
    now = utcnow()
    moved = session.execute(
        move(
            EventStatus.RECEIVED,
            WebhookEvent.event_id == step.event_id,
            WebhookEvent.status == step.before,
            next_attempt_at=now,
            attempts=0,
            claim_token=None,
            lease_expires_at=None,
            finished_at=None,
            status_reason=reason,
            updated_at=now,
            **(step.envelope or {}),
        )
    ).rowcount  # type: ignore[attr-defined]
    if not moved:
        return replace(
            step, after=step.before, action="stay: it changed meanwhile; run replay again"
        )
    wake_relay(session)  # PostgreSQL delivers the notice when the transaction commits
    return step


def apply_replay(
    sessions: sessionmaker[Session],
    plan: Iterable[ReplayStep],
    record: Callable[[Session, ReplayStep], None] | None = None,
    reason: str = OPERATOR_REASON,
) -> list[ReplayStep]:
    """Replay each planned event in its own transaction; return what each step did.

    `record(session, step)` runs in the same transaction as the step's move, so a record of
    the replay (the console's operator action) exists exactly when the move does.
    """
    done = []
    for step in plan:
        with sessions.begin() as session:
            result = replay_event(session, step, reason)
            if record is not None:
                record(session, result)
        done.append(result)
    return done
