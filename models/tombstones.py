"""Tombstones: the ids of purged events, so that a late redelivery is still a duplicate.

Retention deletes finished events (tasks/retention.py); Rivya may still redeliver one, or
the reconciler may read it again from the event log. The receiver's insert checks this table
in the same statement (models/inbox.py), so neither can store it a second time.

A table of its own rather than a stripped row in webhook_events: the events table shrinks
by the whole row and its index entries, and nothing that reads events (sweeper, relay,
console, replay) has to learn about rows without a body.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class EventTombstone(Base):
    __tablename__ = "event_tombstones"

    # The primary key's index is what the receiver probes on every delivery.
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    # Retention drops tombstones by age once Rivya can no longer send their events again.
    purged_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
