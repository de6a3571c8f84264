"""Reading a verified envelope: problems are reported, never raised."""

from __future__ import annotations

import json

import pytest

from rivyahooks_protocol.envelope import parse_envelope
from tests.conftest import make_event


def test_genuine_event_has_no_problem() -> None:
    event = make_event(task_id="task_1", event_id="evt_1")
    envelope = parse_envelope(json.dumps(event).encode())
    assert envelope.problem is None
    assert envelope.event_id == "evt_1"
    assert envelope.task_id == "task_1"
    assert envelope.event_type == "generation.succeeded"
    assert envelope.api_version == event["api_version"]


def test_unknown_fields_are_ignored() -> None:
    event = make_event() | {"livemode": True, "extra": {"nested": [1, 2]}}
    assert parse_envelope(json.dumps(event).encode()).problem is None


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "body is not JSON"),
        (b"\xff\xfe", "body is not JSON"),
        (b"{", "body is not JSON"),
        (b"[1, 2]", "body is not a JSON object"),
        (b'"evt"', "body is not a JSON object"),
        (b"null", "body is not a JSON object"),
        (b"[" * 100_000, "body is not JSON"),
        (
            json.dumps({"type": "generation.failed", "data": {"id": "t"}}).encode(),
            "event has no id",
        ),
        (json.dumps({"id": 7, "type": "generation.failed"}).encode(), "event has no id"),
        (json.dumps({"id": "e" * 256, "type": "generation.failed"}).encode(), "event has no id"),
        (
            json.dumps({"id": "evt", "type": "chat.completed"}).encode(),
            "unknown event type 'chat.completed'",
        ),
        (json.dumps({"id": "evt", "type": None}).encode(), "unknown event type 'None'"),
        (json.dumps({"id": "evt", "type": "generation.failed"}).encode(), "event has no task id"),
        (
            json.dumps({"id": "evt", "type": "generation.failed", "data": []}).encode(),
            "event has no task id",
        ),
        (
            json.dumps({"id": "evt", "type": "generation.failed", "data": {"id": ""}}).encode(),
            "event has no task id",
        ),
    ],
)
def test_problems_are_reported(body: bytes, problem: str) -> None:
    assert parse_envelope(body).problem == problem


def test_long_unknown_type_is_cut_in_the_problem() -> None:
    body = json.dumps({"id": "evt", "type": "x" * 200}).encode()
    problem = parse_envelope(body).problem or ""
    assert len(problem) < 150
