"""Rivya's times: ISO-8601 UTC with milliseconds and a Z, read strictly or leniently."""

from __future__ import annotations

from datetime import UTC, datetime


def format_timestamp(moment: datetime) -> str:
    """Return `moment` as Rivya writes times: ISO-8601 UTC with milliseconds and a Z."""
    if moment.tzinfo is None:
        raise ValueError("a timezone-aware datetime is needed")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_timestamp(value: str) -> datetime:
    """Parse a Rivya ISO-8601 time (with or without milliseconds, Z or offset)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def lenient_timestamp(value: object) -> datetime | None:
    """Return a Rivya timestamp field as a datetime, or None if absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None
