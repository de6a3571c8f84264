"""Each answer of the webhook endpoint is counted under the outcome an operator expects."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Flask

from receiver.delivery_counter import outcome_of
from receiver.responses import json_answer, json_error


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (202, {"status": "accepted"}, ("accepted", "")),
        (202, {"status": "quarantined"}, ("quarantined", "")),
        (200, {"status": "duplicate"}, ("duplicate", "")),
        (401, {"error": {"code": "signature_invalid"}}, ("rejected", "signature_invalid")),
        (
            401,
            {"error": {"code": "timestamp_out_of_tolerance"}},
            ("rejected", "timestamp_out_of_tolerance"),
        ),
        (413, {"error": {"code": "body_too_large"}}, ("rejected", "body_too_large")),
        (400, {"error": {"code": "event_id_mismatch"}}, ("rejected", "event_id_mismatch")),
        (503, {"error": {"code": "database_unavailable"}}, ("unavailable", "database_unavailable")),
        (500, {"unexpected": True}, ("unavailable", "http_500")),
    ],
)
def test_outcome_of_each_answer(
    status: int, body: dict[str, object], expected: tuple[str, str]
) -> None:
    with Flask(__name__).app_context():
        response = json_answer(status, body)
        assert outcome_of(response) == expected


def test_a_body_that_is_not_json_still_counts() -> None:
    from flask import Response

    assert outcome_of(Response("oops", status=502)) == ("unavailable", "http_502")
    with Flask(__name__).app_context():
        assert outcome_of(json_error(404, "not_found")) == ("rejected", "not_found")


def test_counts_fall_in_the_minute_they_happened() -> None:
    from collections import Counter

    from receiver.delivery_counter import DeliveryCounter

    moments = iter(
        [
            dt.datetime(2026, 11, 28, 9, 30, 59, 999_000, tzinfo=dt.UTC),
            dt.datetime(2026, 11, 28, 9, 31, 0, tzinfo=dt.UTC),
            dt.datetime(2026, 11, 28, 9, 31, 30, tzinfo=dt.UTC),
        ]
    )
    counter = DeliveryCounter(sessions=None, clock=lambda: next(moments))  # type: ignore[arg-type]
    for _ in range(3):
        counter.add("accepted")
    minute = dt.datetime(2026, 11, 28, 9, 31, tzinfo=dt.UTC)
    assert counter._pending == Counter(
        {(minute - dt.timedelta(minutes=1), "accepted", ""): 1, (minute, "accepted", ""): 2}
    )
