"""The pager stops on has_more false, an empty page, or a repeated cursor; 20k events stay fast."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from werkzeug.wrappers import Request, Response

from rivyahooks_protocol.client import RivyaClient
from rivyahooks_simulator import Simulator
from tests.support.httpserver import serving

Page = dict[str, object]


def _event(event_id: str) -> dict[str, object]:
    return {"id": event_id, "type": "generation.succeeded", "object": "event", "data": {}}


@pytest.fixture
def scripted() -> Iterator[Callable[[list[Page]], str]]:
    """Serve a fixed sequence of event-log pages (the last one repeats)."""
    with ExitStack() as servers:

        def start(pages: list[Page]) -> str:
            served = [0]

            def answer(request: Request) -> Response:
                page = pages[min(served[0], len(pages) - 1)]
                served[0] += 1
                return Response(json.dumps(page), content_type="application/json")

            return servers.enter_context(serving(answer))

        yield start


def test_stops_on_repeated_cursor(scripted: Callable[[list[Page]], str]) -> None:
    # A buggy server that keeps answering the same page with has_more: true.
    url = scripted(
        [{"object": "list", "data": [_event("evt_1"), _event("evt_2")], "has_more": True}]
    )
    with RivyaClient(url, "rvya_sk_x") as client:
        pager = client.iter_webhook_events()
        events = list(pager)
    assert pager.pages == 2
    assert pager.stopped_on == "repeated_cursor"
    assert [e["id"] for e in events] == ["evt_1", "evt_2", "evt_1", "evt_2"]


def test_stops_on_empty_page_even_if_has_more(scripted: Callable[[list[Page]], str]) -> None:
    url = scripted(
        [
            {"object": "list", "data": [_event("evt_1")], "has_more": True},
            {"object": "list", "data": [], "has_more": True},
        ]
    )
    with RivyaClient(url, "rvya_sk_x") as client:
        pager = client.iter_webhook_events()
        assert [e["id"] for e in pager] == ["evt_1"]
    assert pager.pages == 2
    assert pager.stopped_on == "empty_page"


def test_twenty_thousand_events_page_in_two_hundred_requests(
    sim: Simulator, rivya: RivyaClient
) -> None:
    # How long it takes is bench/reconcile's business: timing asserted here only fails on a
    # loaded machine. What can be asserted is that each event is read once, a page at a time.
    sim.seed_events(20_000, older_than_seconds=5, spacing_ms=10)
    sim.reset_requests()
    pager = rivya.iter_webhook_events(limit=100)
    ids = [e["id"] for e in pager]
    assert len(ids) == len(set(ids)) == 20_000
    assert pager.pages == 200
    assert len(sim.requests("/api/v1/webhook-events")) == 200
