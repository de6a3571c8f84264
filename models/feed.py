"""The change feed's positions: every change to a generation takes the next one, in commit order.

An app follows `GET /results/feed?after=<cursor>` and must see every change exactly once,
never skipping one. A position from a sequence taken during a transaction does not give
that: transaction A takes 7, B takes 8, B commits, a reader sees 8 and moves its cursor past
7, then A commits 7 behind the cursor, and the reader never sees it.

So a transaction takes its position last, just before it commits, from one counter row
(`INSERT ... ON CONFLICT DO UPDATE SET value = value + n RETURNING value`). The row lock it
takes is held until the commit, so the next transaction that wants a position waits until
this one has committed: positions are handed out in commit order, and once a reader sees
position p, every position below p is committed (or rolled back and reused). PostgreSQL
makes a committed transaction visible before it releases its locks, so no snapshot taken
afterwards can miss it. SQLite serialises writers with its database lock, which gives the
same order with the same code. (PostgreSQL's xid8 / pg_snapshot_xmin horizons would avoid
the counter's lock, but need PostgreSQL-only readers that hold back their cursor; the lock
costs one row update per change and serialises only the commits of generation changes.)

Callers say which generation changed with `models.generations.record_change(session,
task_id)`; the positions are taken by a `before_commit` hook, so "last, just before commit"
holds by construction.
Generation rows are locked first, in task id order, then the counter, so two transactions
never wait for each other's locks in opposite orders. The row lock is FOR NO KEY UPDATE, and
`feed_position` has a plain (not unique) index so that setting it needs no stronger lock:
inserting an output holds a key-share lock on its generation (the foreign key), and two
workers storing two outputs of one generation must not each wait for the other's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Integer, event, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base
from models.db import dialect_insert
from models.generations import CHANGED, Generation

COUNTER_ID = 1


class FeedCounter(Base):
    """One row: the last feed position handed out."""

    __tablename__ = "feed_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


@event.listens_for(Session, "before_commit")
def _take_positions(session: Session) -> None:
    changed: set[str] | None = session.info.pop(CHANGED, None)
    if not changed:
        return
    session.flush()
    ordered = sorted(changed)
    session.execute(
        select(Generation.id)
        .where(Generation.task_id.in_(ordered))
        .order_by(Generation.task_id)
        .with_for_update(key_share=True)
    )
    count = len(ordered)
    # An upsert rather than an UPDATE: the row then need not exist beforehand.
    last: int = session.execute(
        dialect_insert(session, FeedCounter)
        .values(id=COUNTER_ID, value=count)
        .on_conflict_do_update(index_elements=["id"], set_={"value": FeedCounter.value + count})
        .returning(FeedCounter.value)
    ).scalar_one()
    for offset, task_id in enumerate(ordered):
        session.execute(
            update(Generation)
            .where(Generation.task_id == task_id)
            .values(feed_position=last - count + 1 + offset)
        )


@event.listens_for(Session, "after_rollback")
def _forget_changes(session: Session, *_: Any) -> None:
    session.info.pop(CHANGED, None)
