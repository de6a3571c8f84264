"""What a sending worker writes per attempt: the claim, with all it sends, and the record.

An attempt runs on every message to every app, so it is kept to few statements: the claim
is one UPDATE that returns the message and the app with it (PostgreSQL reads the joined
rows in the same statement; SQLite, which cannot return them, reads them in a second), the
times are the database's own, written by the statements that need them rather than read
first, and the record is the delivery's UPDATE and the attempt's INSERT. Every move is a
compare-and-set on the delivery's status (models/outbound.py's `move`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, insert, or_, select
from sqlalchemy.orm import aliased

from models.apps import App
from models.clock import clock_at, clock_value
from models.outbound import DeliveryStatus, OutboundAttempt, OutboundDelivery, OutboundMessage, move

# What a claim returns besides the delivery's own columns.
_SENT = (
    OutboundMessage.payload,
    App.name,
    App.url,
    App.secret,
    App.previous_secret,
    App.previous_secret_until,
    App.signing_key,
    App.failing_since,
)


@dataclass(frozen=True)
class Claim:
    """A delivery claimed for one attempt, with the message and the app it goes to."""

    delivery_id: int
    number: int  # this attempt's number
    claimed_at: dt.datetime  # the database's time of the claim
    message_id: str
    payload: bytes
    app: App  # transient: the columns an attempt needs, never attached to a session

    @property
    def app_failing(self) -> bool:
        return self.app.failing_since is not None


def claim(connection: Connection, delivery_id: int, lease: dt.timedelta) -> Claim | None:
    """Move the delivery to sending if it is enqueued, or pending and due; return the claim."""
    dialect = connection.dialect.name
    return _claim(connection, _statements(dialect).claim, {"key": delivery_id}, lease)


def claim_next(connection: Connection, app_id: str, lease: dt.timedelta) -> Claim | None:
    """Claim the app's oldest due pending delivery, if it is enabled and has one.

    Rows the relay is marking enqueued are skipped (SKIP LOCKED), not waited for: the
    relay publishes those.
    """
    dialect = connection.dialect.name
    return _claim(connection, _statements(dialect).claim_next, {"key": app_id}, lease)


def _claim(
    connection: Connection, statement: Any, parameters: dict[str, Any], lease: dt.timedelta
) -> Claim | None:
    dialect = connection.dialect.name
    parameters |= {"now": clock_value(dialect), "lease_end": clock_value(dialect, lease)}
    if dialect == "postgresql":
        row = connection.execute(statement, parameters).first()
        return None if row is None else _made(row)
    # SQLite returns the updated table's columns only: the message and the app come next.
    claimed = connection.execute(statement, parameters).first()
    if claimed is None:
        return None
    sent = connection.execute(
        _statements(dialect).sent, {"message_id": claimed.message_id, "app_id": claimed.app_id}
    ).one()
    return _made((*claimed, *sent))


def _made(row: Any) -> Claim:
    delivery_id, number, claimed_at, message_id, app_id, payload, *app = row
    name, url, secret, previous, previous_until, signing_key, failing_since = app
    return Claim(
        delivery_id=int(delivery_id),
        number=int(number),
        claimed_at=claimed_at,
        message_id=str(message_id),
        payload=payload,
        app=App(
            id=app_id,
            name=name,
            url=url,
            secret=secret,
            previous_secret=previous,
            previous_secret_until=previous_until,
            signing_key=signing_key,
            failing_since=failing_since,
        ),
    )


@dataclass(frozen=True)
class Attempt:
    """What one attempt came to, as the delivery and its attempt row keep it."""

    outcome: DeliveryStatus  # delivered, pending (a retry) or failed (given up)
    label: str  # the attempt's outcome: delivered, retry or failed
    status_code: int | None
    error: str | None
    excerpt: str | None
    latency_ms: int
    retry_in: dt.timedelta | None = None  # pending: the wait before the next attempt
    reason: str | None = None  # failed: why it was given up


def record(connection: Connection, claim: Claim, attempt: Attempt) -> bool:
    """Record the attempt; move the delivery on unless its claim was taken back meanwhile.

    Return whether the delivery moved (False: the attempt is kept in its row only).
    """
    dialect = connection.dialect.name
    statements = _statements(dialect)
    now = clock_value(dialect)
    error = attempt.error[:300] if attempt.error else None
    common = {
        "key": claim.delivery_id,
        "number": claim.number,
        "status_code": attempt.status_code,
        "error": error,
        "now": now,
    }
    if attempt.outcome is DeliveryStatus.PENDING:
        moved = connection.execute(
            statements.retry,
            common | {"next_at": clock_value(dialect, attempt.retry_in or dt.timedelta(0))},
        )
    else:
        moved = connection.execute(
            statements.finish[attempt.outcome], common | {"reason": attempt.reason}
        )
    connection.execute(
        statements.attempt,
        {
            "delivery_id": claim.delivery_id,
            "app_id": claim.app.id,
            "number": claim.number,
            "attempted_at": clock_value(dialect, -dt.timedelta(milliseconds=attempt.latency_ms)),
            "status_code": attempt.status_code,
            "latency_ms": attempt.latency_ms,
            "response_excerpt": attempt.excerpt,
            "error": error,
            "outcome": attempt.label,
        },
    )
    return bool(moved.rowcount)


@dataclass(frozen=True)
class _Statements:
    claim: Any
    claim_next: Any
    sent: Any  # SQLite: the message and the app of a claim
    finish: dict[DeliveryStatus, Any]  # to delivered or failed
    retry: Any  # back to pending, due later
    attempt: Any


# Built once per dialect and executed with parameters: building and keying statements this
# size on every call cost more CPU than their round trips (the same as models/inbox.py's).
_BUILT: dict[str, _Statements] = {}


def _statements(dialect: str) -> _Statements:
    if dialect not in _BUILT:
        _BUILT[dialect] = _build(dialect)
    return _BUILT[dialect]


def _build(dialect: str) -> _Statements:
    now = clock_at(dialect, "now")
    mine = (
        OutboundDelivery.id,
        OutboundDelivery.attempts,
        OutboundDelivery.updated_at,
        OutboundDelivery.message_id,
        OutboundDelivery.app_id,
    )

    def claiming(*where: ColumnElement[bool]) -> Any:
        statement = move(
            DeliveryStatus.SENDING,
            *where,
            attempts=OutboundDelivery.attempts + 1,
            lease_until=clock_at(dialect, "lease_end"),
            updated_at=now,
        )
        if dialect != "postgresql":
            return statement.returning(*mine)
        return statement.where(
            OutboundMessage.id == OutboundDelivery.message_id,
            App.id == OutboundDelivery.app_id,
        ).returning(*mine, *_SENT)

    by_id = claiming(
        OutboundDelivery.id == bindparam("key"),
        or_(
            OutboundDelivery.status == DeliveryStatus.ENQUEUED,
            # The relay's transaction that marks it enqueued may not have committed yet: the
            # row as last committed is then pending and due. An UPDATE skips a row whose
            # committed version does not match, without waiting, so this matches it too: the
            # claim then waits for the relay's row lock and takes the delivery once it is
            # enqueued (or as it is, if that was rolled back).
            and_(
                OutboundDelivery.status == DeliveryStatus.PENDING,
                OutboundDelivery.next_attempt_at <= now,
            ),
        ),
    )
    # Aliases: the UPDATE's own tables would otherwise correlate into the subquery.
    other, app = aliased(OutboundDelivery), aliased(App)
    oldest = (
        select(other.id)
        .join(app, and_(app.id == other.app_id, app.enabled.is_(True)))
        .where(
            other.app_id == bindparam("key"),
            other.status == DeliveryStatus.PENDING,
            other.next_attempt_at <= now,
        )
        .order_by(other.next_attempt_at, other.id)
        .limit(1)
        .with_for_update(of=other, skip_locked=True)
        .scalar_subquery()
    )
    next_of_app = claiming(
        OutboundDelivery.id == oldest, OutboundDelivery.status == DeliveryStatus.PENDING
    )
    sent = (
        select(*_SENT)
        .join(App, App.id == bindparam("app_id"))
        .where(OutboundMessage.id == bindparam("message_id"))
    )

    def recording(target: DeliveryStatus, **values: Any) -> Any:
        return move(
            target,
            OutboundDelivery.id == bindparam("key"),
            OutboundDelivery.status == DeliveryStatus.SENDING,
            OutboundDelivery.attempts == bindparam("number"),
            lease_until=None,
            last_status_code=bindparam("status_code"),
            last_error=bindparam("error"),
            updated_at=now,
            **values,
        )

    finish = {
        target: recording(target, finished_at=now, reason=bindparam("reason"))
        for target in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)
    }
    retry = recording(DeliveryStatus.PENDING, next_attempt_at=clock_at(dialect, "next_at"))
    attempt = insert(OutboundAttempt).values(
        {
            column: bindparam(column)
            for column in (
                "delivery_id",
                "app_id",
                "number",
                "status_code",
                "latency_ms",
                "response_excerpt",
                "error",
                "outcome",
            )
        }
        | {"attempted_at": clock_at(dialect, "attempted_at")}
    )
    return _Statements(by_id, next_of_app, sent, finish, retry, attempt)
