"""The reconciler's checkpoint: how far into Rivya's event log this service has caught up."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class ReconcileState(Base):
    __tablename__ = "reconcile_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # created_at of the newest event stored from the log; the next run reads from here
    # minus the overlap window.
    checkpoint: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Held while a run is in progress; a run only proceeds after taking the row lock.
    running_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_summary: Mapped[str | None] = mapped_column(String(2000))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
