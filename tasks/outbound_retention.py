"""Retention of outbound messages: a message goes once every delivery of it is finished.

A message older than the cutoff goes with its deliveries and their attempts (the foreign
keys cascade) when none of its deliveries is open and none finished after the cutoff: a
delivery still pending, enqueued or sending keeps its message, and so does a replayed one
delivered or given up recently, so `apps show` still has its attempts.

Each batch locks the deliveries of the messages it chose and looks again: a replay that
reopened one meanwhile keeps its message, and a replay that comes after waits for the
batch and then finds nothing to reopen.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session, sessionmaker

from models.outbound import OPEN_STATUSES, OutboundAttempt, OutboundDelivery, OutboundMessage


@dataclass
class MessagesPurged:
    messages: int = 0
    deliveries: int = 0
    attempts: int = 0


def _kept_by(cutoff: dt.datetime) -> Any:
    """A delivery that keeps its message: open, or finished after the cutoff."""
    return exists().where(
        (OutboundDelivery.message_id == OutboundMessage.id)
        & (OutboundDelivery.status.in_(OPEN_STATUSES) | (OutboundDelivery.finished_at >= cutoff))
    )


def _old_messages(cutoff: dt.datetime) -> Any:
    # Reads the index on created_at; each candidate's deliveries by their unique key.
    return (OutboundMessage.created_at < cutoff) & ~_kept_by(cutoff)


def _counts(session: Session, message_ids: Any) -> tuple[int, int]:
    deliveries = select(OutboundDelivery.id).where(OutboundDelivery.message_id.in_(message_ids))
    return (
        int(session.scalar(select(func.count()).select_from(deliveries.subquery())) or 0),
        int(
            session.scalar(select(func.count()).where(OutboundAttempt.delivery_id.in_(deliveries)))
            or 0
        ),
    )


def purge_messages(
    sessions: sessionmaker[Session],
    cutoff: dt.datetime,
    *,
    dry_run: bool,
    batch: int,
    say: Callable[[str], None] | None = None,
) -> MessagesPurged:
    """Delete messages older than `cutoff` whose deliveries all finished before it."""
    purged = MessagesPurged()
    if dry_run:
        with sessions() as session:
            old = select(OutboundMessage.id).where(_old_messages(cutoff))
            purged.messages = int(
                session.scalar(select(func.count()).select_from(old.subquery())) or 0
            )
            purged.deliveries, purged.attempts = _counts(session, old)
        return purged
    while True:
        with sessions.begin() as session:
            chosen = list(
                session.scalars(
                    select(OutboundMessage.id)
                    .where(_old_messages(cutoff))
                    .order_by(OutboundMessage.created_at)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            )
            if not chosen:
                return purged
            session.execute(
                select(OutboundDelivery.id)
                .where(OutboundDelivery.message_id.in_(chosen))
                .with_for_update()
            ).all()
            # Read after the lock: what a replay reopened before it is seen now.
            ids = list(
                session.scalars(
                    select(OutboundMessage.id).where(
                        OutboundMessage.id.in_(chosen), ~_kept_by(cutoff)
                    )
                )
            )
            deliveries, attempts = _counts(session, ids)
            session.execute(
                delete(OutboundMessage)
                .where(OutboundMessage.id.in_(ids))
                .execution_options(synchronize_session=False)
            )
        purged.messages += len(ids)
        purged.deliveries += deliveries
        purged.attempts += attempts
        if say:
            say(f"outbound messages: {purged.messages} purged")
        if len(chosen) < batch:
            return purged
