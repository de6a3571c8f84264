"""The database's clock: the one time every host agrees on.

Leases, due times and age cutoffs are compared by several hosts; a host whose clock runs a
few seconds ahead would take over a live lease or publish early. PostgreSQL's
clock_timestamp() is read instead. SQLite serves the processes of one host, so there the
host's clock is the database's.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, Connection, Interval, bindparam, func, select
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


def clock_at(dialect: str, name: str) -> ColumnElement[dt.datetime]:
    """Return the database's time plus the interval bound as `name`, as SQL.

    For statements built once and executed with parameters (bind `clock_value(dialect,
    offset)` as `name`): the time is read by the statement that writes it, without the
    round trip of `database_now`. SQLite's time is the host's, bound as a value.
    """
    if dialect != "postgresql":
        return bindparam(name, type_=UTCDateTime())
    return func.clock_timestamp(type_=UTCDateTime()) + bindparam(name, type_=Interval())


def clock_value(dialect: str, offset: dt.timedelta = dt.timedelta(0)) -> dt.timedelta | dt.datetime:
    """Return what to bind for a `clock_at` parameter: the offset, or on SQLite the time."""
    return offset if dialect == "postgresql" else utcnow() + offset
