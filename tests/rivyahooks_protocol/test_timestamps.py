"""Rivya's times: written with milliseconds and a Z, read with or without them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from rivyahooks_protocol.timestamps import format_timestamp, lenient_timestamp, parse_timestamp


def test_format_writes_utc_milliseconds_and_a_z() -> None:
    moment = datetime(2026, 5, 11, 12, 0, 5, 123_987, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(moment) == "2026-05-11T10:00:05.123Z"


def test_format_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(datetime(2026, 5, 11, 10, 0))  # naive: the point of the test


def test_parse_reads_z_offsets_and_whole_seconds() -> None:
    expected = datetime(2026, 5, 11, 10, 0, 5, 123_000, tzinfo=UTC)
    assert parse_timestamp("2026-05-11T10:00:05.123Z") == expected
    assert parse_timestamp("2026-05-11T12:00:05.123+02:00") == expected
    assert parse_timestamp("2026-05-11T10:00:05Z") == expected.replace(microsecond=0)
    assert parse_timestamp("2026-05-11T10:00:05.123Z").tzinfo is UTC


def test_format_and_parse_round_trip() -> None:
    moment = datetime(2026, 5, 11, 10, 0, 5, 123_000, tzinfo=UTC)
    assert parse_timestamp(format_timestamp(moment)) == moment


def test_lenient_returns_none_for_what_it_cannot_read() -> None:
    assert lenient_timestamp("2026-05-11T10:00:05.000Z") == datetime(
        2026, 5, 11, 10, 0, 5, tzinfo=UTC
    )
    for unreadable in (None, "", "yesterday", 1_778_493_605, True, ["2026-05-11T10:00:05Z"]):
        assert lenient_timestamp(unreadable) is None
