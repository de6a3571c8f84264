"""Generations as Rivya last reported them, and the result files stored for them."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from models.base import Base, BigId, UTCDateTime, utcnow
from models.db import dialect_insert


class GenerationStatus(enum.StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (GenerationStatus.SUCCEEDED, GenerationStatus.FAILED)


class Generation(Base):
    __tablename__ = "generations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[str] = mapped_column(String(255), unique=True)
    model: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[GenerationStatus] = mapped_column(
        Enum(
            GenerationStatus,
            name="generation_status",
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    reserved_credits: Mapped[float | None] = mapped_column(Numeric(14, 4, asdecimal=False))
    final_credits: Mapped[float | None] = mapped_column(Numeric(14, 4, asdecimal=False))
    rivya_created_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Rivya's updated_at orders updates: an older one never overwrites a newer one.
    rivya_updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    error_code: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)
    # Set when a succeeded generation has no result URL: recorded and alerted, not a crash.
    anomaly: Mapped[str | None] = mapped_column(Text)
    results_stored_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # When the generation reached succeeded or failed (Rivya's updated_at of that update).
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Its place in the change feed: taken at commit by every change (see models/feed.py).
    feed_position: Mapped[int | None] = mapped_column(BigInteger)
    # Set by `rivya-hooks submit`: we created it, so the poller watches it even if no event
    # ever arrives.
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_polled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    first_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    outputs: Mapped[list[GenerationOutput]] = relationship(
        back_populates="generation", order_by="GenerationOutput.index"
    )

    __table_args__ = (
        # Not unique: the counter already makes positions unique, and updating a column of a
        # unique index would take a lock that conflicts with inserting an output.
        Index("ix_generations_feed_position", "feed_position"),
        # The listing pages newest first, optionally within one status.
        Index("ix_generations_status_id", "status", "id"),
    )

    def __repr__(self) -> str:
        return f"<Generation {self.task_id} {self.status}>"


class GenerationOutput(Base):
    __tablename__ = "generation_outputs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("generations.task_id", ondelete="CASCADE"))
    index: Mapped[int]
    content_type: Mapped[str | None] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(1024))
    source_host: Mapped[str] = mapped_column(String(255))
    stored_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    generation: Mapped[Generation] = relationship(back_populates="outputs")

    # One stored file per output position, however many events or workers race for it.
    __table_args__ = (
        UniqueConstraint("task_id", "index", name="uq_generation_outputs_task_index"),
    )


# The generations a session changed, by task id: the feed (models/feed.py) gives each a new
# position when the session commits.
CHANGED = "rivyahooks.feed.changed"


def record_change(session: Session, task_id: str) -> None:
    """Note that the generation changed; it takes a new feed position when the session commits."""
    session.info.setdefault(CHANGED, set()).add(task_id)


def find_output(session: Session, task_id: str, index: int) -> GenerationOutput | None:
    """Return the stored output at `index` of a generation, or None."""
    return session.scalars(
        select(GenerationOutput).where(
            GenerationOutput.task_id == task_id, GenerationOutput.index == index
        )
    ).one_or_none()


def insert_output(session: Session, **values: Any) -> bool:
    """Insert an output row unless (task_id, index) exists; return True if inserted."""
    task_id = values.pop("task_id")
    return bool(insert_outputs(session, task_id, [values]))


def insert_outputs(session: Session, task_id: str, rows: list[dict[str, Any]]) -> set[int]:
    """Insert a generation's output rows, each unless its index exists; return those inserted.

    One statement however many rows: the outputs of an attempt are recorded together.
    """
    if not rows:
        return set()
    stored_at = utcnow()
    statement = (
        dialect_insert(session, GenerationOutput)
        .values([{"stored_at": stored_at, **row, "task_id": task_id} for row in rows])
        .on_conflict_do_nothing(index_elements=["task_id", "index"])
        .returning(GenerationOutput.index)
    )
    created = set(session.scalars(statement))
    if created:
        record_change(session, task_id)
    return created


def stored_indexes(session: Session, task_id: str) -> set[int]:
    """Return the indexes of the generation's outputs already stored."""
    return set(
        session.scalars(select(GenerationOutput.index).where(GenerationOutput.task_id == task_id))
    )
