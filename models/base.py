"""The declarative base, its naming convention and the column types every model shares."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute

# Named constraints make migrations reproducible: Alembic can drop or alter a constraint only
# when it knows its name, and PostgreSQL and SQLite would otherwise invent different ones.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only autoincrements an INTEGER PRIMARY KEY, so BIGINT becomes INTEGER there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always returned timezone-aware.

    SQLite has no time zones and hands back naive values; comparing those with aware ones
    raises, so every value is normalised here, once.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        moment: dt.datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC)


def clip(column: InstrumentedAttribute[Any], value: str | None) -> str | None:
    """Return `value` made storable in `column`: cut to its length, without NUL characters.

    Text from outside (Rivya's answers, headers, exception messages) goes through here
    before it is stored: PostgreSQL refuses a value longer than a VARCHAR or holding a NUL,
    and a refused write after the work was done would strand the event.
    """
    if value is None:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "")
    limit = _LIMITS.get(id(column), _UNKNOWN)
    if limit is _UNKNOWN:
        # Reading a column's type through the ORM attribute costs more than the receiver's
        # whole insert: look it up once per column.
        limit = _LIMITS[id(column)] = getattr(column.type, "length", None)
    return value[:limit] if limit else value


_UNKNOWN = object()
_LIMITS: dict[int, Any] = {}


def utcnow() -> dt.datetime:
    """Return the current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
