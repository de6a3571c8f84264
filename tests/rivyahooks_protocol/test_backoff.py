"""The one backoff: its bounds, the Retry-After floor, the cap, and reading Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from rivyahooks_protocol.backoff import backoff_seconds, parse_retry_after


@pytest.fixture(autouse=True)
def _seeded() -> None:
    random.seed(1234)


@pytest.mark.parametrize("clip_at_cap", [False, True])
def test_the_wait_doubles_per_failure_within_the_upper_half_of_the_step(
    clip_at_cap: bool,
) -> None:
    for failures, step in ((0, 2.0), (1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0)):
        for _ in range(200):
            wait = backoff_seconds(
                failures, base_seconds=2.0, max_seconds=300.0, clip_at_cap=clip_at_cap
            )
            assert step / 2 <= wait <= step


def test_the_waits_are_spread_not_identical() -> None:
    waits = {backoff_seconds(4, base_seconds=1.0, max_seconds=300.0) for _ in range(50)}
    assert len(waits) > 40
    assert min(waits) < 5.0 < max(waits)


def test_past_the_cap_the_wait_spreads_over_its_upper_half() -> None:
    waits = [backoff_seconds(20, base_seconds=2.0, max_seconds=300.0) for _ in range(200)]
    assert all(150.0 <= wait <= 300.0 for wait in waits)
    assert min(waits) < 200.0


def test_past_the_cap_a_clipping_wait_is_the_cap() -> None:
    for failures in (8, 20):
        wait = backoff_seconds(failures, base_seconds=0.5, max_seconds=60.0, clip_at_cap=True)
        assert wait == 60.0


@pytest.mark.parametrize("clip_at_cap", [False, True])
def test_retry_after_is_a_floor_below_the_cap(clip_at_cap: bool) -> None:
    for _ in range(100):
        wait = backoff_seconds(
            1, 45.0, base_seconds=2.0, max_seconds=300.0, clip_at_cap=clip_at_cap
        )
        assert wait == 45.0
    # A Retry-After shorter than the backoff does not shorten it.
    assert backoff_seconds(4, 0.0, base_seconds=2.0, max_seconds=300.0) >= 8.0
    # A hostile Retry-After is cut to the cap.
    assert backoff_seconds(1, 86400.0, base_seconds=2.0, max_seconds=300.0) == 300.0
    assert backoff_seconds(2, 86400.0, base_seconds=0.5, max_seconds=0.2, clip_at_cap=True) == 0.2


def test_a_zero_base_never_waits() -> None:
    assert backoff_seconds(3, base_seconds=0.0, max_seconds=60.0, clip_at_cap=True) == 0.0


def test_parse_retry_after_seconds_and_http_date() -> None:
    now = datetime(2026, 5, 11, 10, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 7 ") == 7.0
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(30)
    assert parse_retry_after("yesterday-ish") is None
    assert parse_retry_after(None) is None


def test_parse_retry_after_never_goes_negative_or_huge() -> None:
    now = datetime(2026, 5, 11, 10, 0, tzinfo=UTC)
    earlier = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(earlier, now=now.timestamp()) == 0.0
    assert parse_retry_after("-5") is None
    assert parse_retry_after("12345678901") is None  # more digits than any sane wait
