"""Wake the relay when a generation's final state changes, so its apps hear of it at once.

The relay turns those changes into messages (tasks/outbound_fanout.py). Unwoken, it finds
them when it next looks, up to RELAY_POLL_SECONDS later once idle. The wake is a NOTIFY on
the relay's channel in the transaction that made the change: PostgreSQL sends it at commit,
so the relay never looks before the change is visible and a rolled-back change wakes
nobody. Its payload tells the relay to fan out now rather than at its next turn. One per
transaction, however many generations it finished: a notifying commit holds a global lock
until its notifications are queued. SQLite has no notifications, and behind a pooler in
transaction mode nobody listens: there the relay keeps polling.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session

from models.generations import record_change
from models.inbox import wake_relay

OUTBOUND_WAKE = "outbound"
_WAKE = "rivyahooks.outbound.wake"


def record_final_change(session: Session, task_id: str) -> None:
    """Note a change of the generation's final state: a feed change that wakes the relay."""
    record_change(session, task_id)
    session.info[_WAKE] = True


@event.listens_for(Session, "before_commit")
def _wake_relay(session: Session) -> None:
    if session.info.pop(_WAKE, False):
        wake_relay(session, OUTBOUND_WAKE)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_WAKE, None)
