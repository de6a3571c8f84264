"""Deliveries counted by minute and outcome, for the console's rates.

Duplicates and rejected deliveries are never stored as events (a forged delivery must not
cost a row), so the web processes count them in memory and add their counts here every few
seconds: one small upsert per minute, outcome and reason, not a write per request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from sqlalchemy import BigInteger, String, delete
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, UTCDateTime
from models.db import dialect_insert


class DeliveryOutcome:
    ACCEPTED = "accepted"
    QUARANTINED = "quarantined"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"  # the reason says why: signature, timestamp, size, id mismatch
    UNAVAILABLE = "unavailable"  # the database was down; Rivya retries


class DeliveryCount(Base):
    __tablename__ = "delivery_counts"

    # The start of the minute, UTC.
    minute: Mapped[dt.datetime] = mapped_column(UTCDateTime, primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    # "" rather than NULL, so that the primary key makes (minute, outcome, reason) unique.
    reason: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    count: Mapped[int] = mapped_column(BigInteger, default=0)


CountKey = tuple[dt.datetime, str, str]


def add_counts(session: Session, counts: Mapping[CountKey, int]) -> None:
    """Add counts to their rows, creating rows that do not exist yet (several processes add)."""
    if not counts:
        return
    insert = dialect_insert(session, DeliveryCount)
    statement = insert.on_conflict_do_update(
        index_elements=["minute", "outcome", "reason"],
        set_={"count": DeliveryCount.count + insert.excluded.count},
    )
    session.execute(
        statement,
        [
            {"minute": minute, "outcome": outcome, "reason": reason, "count": n}
            for (minute, outcome, reason), n in counts.items()
        ],
    )


def minute_of(moment: dt.datetime) -> dt.datetime:
    """Return the start of the minute `moment` falls in."""
    return moment.replace(second=0, microsecond=0)


def forget_counts_before(session: Session, cutoff: dt.datetime) -> int:
    """Delete the counts of minutes before `cutoff` (retention); return how many rows went."""
    result = session.execute(delete(DeliveryCount).where(DeliveryCount.minute < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]
