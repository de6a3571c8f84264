"""The database's clock: the one time every host agrees on.

Leases, due times and age cutoffs are compared by several hosts; a host whose clock runs a
few seconds ahead would take over a live lease or publish early. PostgreSQL's
clock_timestamp() is read instead. SQLite serves the processes of one host, so there the
host's clock is the database's.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from models.base import UTCDateTime, utcnow
from models.db import dialect_name


def database_now(executor: Session | Connection) -> dt.datetime:
    """Return the database's current time, aware, in UTC."""
    if dialect_name(executor) != "postgresql":
        return utcnow()
    # clock_timestamp(), not now(): now() is frozen at the transaction's start.
    moment: dt.datetime | None = executor.scalar(select(func.clock_timestamp(type_=UTCDateTime())))
    if moment is None:  # pragma: no cover - the function always answers
        raise RuntimeError("the database returned no time")
    return moment.astimezone(dt.UTC)
