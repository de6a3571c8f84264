"""Event keys: the id of every event ever accepted, so that it is never accepted twice.

The receiver, the reconciler and store_event insert an event's key in the same statement
(or transaction) as the event, and store the event only if its key was new. Retention
deletes finished events but keeps their keys, marked with purged_at (a tombstone), so a late
redelivery, or the reconciler reading the event log again, is still refused. The refusal is
the primary key's: a redelivery whose snapshot predates the purge still meets the key, which
a separate "is it tombstoned?" read could not promise. Keys go only once Rivya can no longer
send their events again (tasks/retention.py, TOMBSTONE_LIFETIME).

A narrow table of its own rather than purged rows left in webhook_events: the events table
shrinks by the whole row and its index entries, and nothing that reads events (sweeper,
relay, console, replay) has to learn about rows without a body.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime

# Only tombstones are indexed by age: a stored event's key (NULL) costs the receiver's
# insert no second index entry.
PURGED = "purged_at IS NOT NULL"


class EventKey(Base):
    __tablename__ = "event_keys"

    # The primary key is what refuses a second delivery, on every path that stores events.
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    # None while the event is stored; when retention purged it (the key is a tombstone).
    purged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index(
            "ix_event_keys_purged_at",
            "purged_at",
            postgresql_where=text(PURGED),
            sqlite_where=text(PURGED),
        ),
    )
