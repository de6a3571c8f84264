"""Each answer of the webhook endpoint is counted under the outcome an operator expects."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Flask

from receiver.delivery_counter import AnswerOutcomes, DeliveryCounter, outcome_of
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


def test_each_answer_is_read_once_and_then_remembered() -> None:
    outcomes = AnswerOutcomes()
    with Flask(__name__).app_context():
        first = outcomes(json_error(401, "signature_invalid"))
        again = outcomes(json_error(401, "signature_invalid"))
        other = outcomes(json_error(401, "timestamp_out_of_tolerance"))
        same_body_other_status = outcomes(json_error(503, "signature_invalid"))
    assert first == again == ("rejected", "signature_invalid")
    assert first is again  # the remembered tuple: counting it allocates nothing new
    assert other == ("rejected", "timestamp_out_of_tolerance")
    assert same_body_other_status == ("unavailable", "signature_invalid")


def test_a_streamed_or_large_answer_is_read_each_time() -> None:
    from flask import Response

    outcomes = AnswerOutcomes()
    streamed = Response(iter([b"oops"]), status=500)
    assert outcomes(streamed) == ("unavailable", "http_500")
    large = Response(b"<html>" + b"x" * 1000, status=502)
    assert outcomes(large) == outcomes(large) == ("unavailable", "http_502")
    assert outcomes._known == {}


def test_counts_fall_in_the_minute_they_happened() -> None:
    moments = iter(
        [
            dt.datetime(2026, 11, 28, 9, 30, 59, 999_000, tzinfo=dt.UTC).timestamp(),
            dt.datetime(2026, 11, 28, 9, 31, 0, tzinfo=dt.UTC).timestamp(),
            dt.datetime(2026, 11, 28, 9, 31, 30, tzinfo=dt.UTC).timestamp(),
            dt.datetime(2026, 11, 28, 9, 30, 30, tzinfo=dt.UTC).timestamp(),  # clock set back
        ]
    )
    counter = DeliveryCounter(sessions=None, clock=lambda: next(moments))  # type: ignore[arg-type]
    accepted = ("accepted", "")
    for _ in range(4):
        counter.add(accepted)
    minute = dt.datetime(2026, 11, 28, 9, 31, tzinfo=dt.UTC)
    assert {
        dt.datetime.fromtimestamp(start, dt.UTC): dict(counts)
        for start, counts in counter._pending.items()
    } == {minute - dt.timedelta(minutes=1): {accepted: 2}, minute: {accepted: 2}}
