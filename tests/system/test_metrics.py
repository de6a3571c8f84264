"""What Prometheus reads: the web role's counters, the families' names, beat's gauges."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from flask import Flask
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.db import make_engine, make_session_factory
from models.events import EventSource, EventStatus
from models.inbox import insert_event
from rivyahooks_foundation.settings import Settings
from tasks.database_gauges import DatabaseGauges
from tests.conftest import OTHER_SECRET, SECRET, make_event, signed_delivery
from tests.support.processes import gunicorn
from tests.support.tcpproxy import tcp_proxy

TOKEN = "metrics-token-for-tests"
PATH = "/webhooks/rivya"


Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Scrape:
    """Return every sample of a scrape by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scrape: Scrape, name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


# --- the route -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "offered", "status"),
    [
        ("", f"Bearer {TOKEN}", 404),
        (TOKEN, None, 401),
        (TOKEN, "Bearer wrong", 401),
        (TOKEN, TOKEN, 401),  # the scheme is part of the value
        (TOKEN, f"Bearer {TOKEN}", 200),
    ],
)
def test_web_metrics_answer_only_with_the_token(
    settings: Settings,
    token: str,
    offered: str | None,
    status: int,
    make_app: Callable[[Settings], Flask],
) -> None:
    app = make_app(settings.replace(metrics_token=token))
    headers = {"Authorization": offered} if offered else {}
    response = app.test_client().get("/metrics", headers=headers)
    assert response.status_code == status
    if status == 200:
        assert "# HELP rivyahooks_deliveries_total" in response.get_data(as_text=True)


def test_every_family_has_help_and_a_conventional_name() -> None:
    import rivyahooks_foundation.metrics.relay
    import rivyahooks_foundation.metrics.web
    import rivyahooks_foundation.metrics.worker  # noqa: F401  (every role's families, in one registry)

    families = [
        f
        for f in text_string_to_metric_families(generate_latest(REGISTRY).decode())
        if f.name.startswith("rivyahooks_")
    ]
    assert len(families) >= 10
    for family in families:
        assert family.documentation, family.name
        # Units are suffixes of base units; counters get `_total` from the client.
        assert not family.name.endswith(("_ms", "_milliseconds", "_kb", "_count")), family.name
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name


# --- counters of a real gunicorn with two workers ------------------------------------------


@pytest.fixture
def web(postgres_url: str, tmp_path: Path, postgres_engine: Engine) -> Iterator[httpx.Client]:
    settings = Settings(
        database_url=postgres_url,
        broker_url=f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}",
        webhook_secrets=(SECRET,),
        webhook_max_body_bytes=4096,
        metrics_token=TOKEN,
    )
    with (
        gunicorn(settings, workers=2, threads=2, log=tmp_path / "web.log") as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client


@pytest.mark.postgres
def test_after_n_deliveries_of_each_outcome_the_counters_say_n(web: httpx.Client) -> None:
    n = 5
    sent: dict[str, int] = {}

    def send(outcome: str, body: bytes, headers: dict[str, str], status: int) -> None:
        # A new connection each time, so both workers take deliveries.
        response = httpx.post(str(web.base_url) + PATH, content=body, headers=headers)
        assert response.status_code == status, (outcome, response.text)
        sent[outcome] = sent.get(outcome, 0) + 1

    for _ in range(n):
        body, headers = signed_delivery(make_event())
        send("accepted", body, headers, 202)
        send("duplicate", body, headers, 200)
        # Verified but not understood (unknown type): stored as quarantined.
        unknown = make_event() | {"type": "chat.completed"}
        send("quarantined", *signed_delivery(unknown), 202)
        send("rejected", *signed_delivery(make_event(), secret=OTHER_SECRET), 401)
        send("too_large", *signed_delivery(make_event() | {"pad": "x" * 5000}), 413)
        event = make_event()
        send("id_mismatch", *signed_delivery(event, webhook_id=event["id"] + "x"), 400)

    scrape = samples(web.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text)
    for outcome in sent:
        assert value(scrape, "rivyahooks_deliveries_total", outcome=outcome) == n, outcome
    assert value(scrape, "rivyahooks_signature_failures_total", code="signature_invalid") == n
    assert value(scrape, "rivyahooks_signature_failures_total", code="signature_missing") == 0
    assert value(scrape, "rivyahooks_delivery_duration_seconds_count") == n * len(sent)
    assert value(scrape, "rivyahooks_build_info", version="0.1.0", python=_python()) == 1


def _python() -> str:
    import platform

    return platform.python_version()


# --- beat's database gauges ----------------------------------------------------------------


def _add(sessions: sessionmaker[Session], status: EventStatus, count: int) -> None:
    with sessions.begin() as session:
        for _ in range(count):
            insert_event(
                session,
                event_id=make_event()["id"],
                body=b"{}",
                source=EventSource.WEBHOOK,
                status=status,
            )


def test_database_gauges_count_small_statuses_once_per_interval(
    sessions: sessionmaker[Session],
) -> None:
    _add(sessions, EventStatus.RECEIVED, 2)
    _add(sessions, EventStatus.DEAD, 3)
    _add(sessions, EventStatus.PROCESSED, 4)
    before = utcnow().timestamp()
    gauges = DatabaseGauges(sessions, interval_seconds=3600)
    first = _collected(gauges)
    assert first[("rivyahooks_events", (("status", "received"),))] == 2
    assert first[("rivyahooks_events", (("status", "dead"),))] == 3
    # Finished events are the large part of the table: never counted here.
    assert ("rivyahooks_events", (("status", "processed"),)) not in first
    assert first[("rivyahooks_oldest_unfinished_event_age_seconds", ())] >= 0
    assert first[("rivyahooks_database_gauges_timestamp_seconds", ())] >= before - 1

    # Within the interval a scrape gets the stored values; a new interval queries again.
    _add(sessions, EventStatus.DEAD, 1)
    assert _collected(gauges) == first
    fresh = _collected(DatabaseGauges(sessions, interval_seconds=3600))
    assert fresh[("rivyahooks_events", (("status", "dead"),))] == 4


def _collected(gauges: DatabaseGauges) -> Scrape:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in gauges.collect()
        for sample in family.samples
    }


@pytest.mark.postgres
def test_database_gauges_keep_their_last_values_while_the_database_is_unreachable(
    postgres_url: str, postgres_engine: Engine
) -> None:
    _add(make_session_factory(postgres_engine), EventStatus.FAILED, 1)
    url = make_url(postgres_url)
    with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        engine = make_engine(url.set(port=proxy.port).render_as_string(hide_password=False))
        try:
            gauges = DatabaseGauges(make_session_factory(engine), interval_seconds=0)
            first = _collected(gauges)
            assert first[("rivyahooks_events", (("status", "failed"),))] == 1
            proxy.cut()
            assert _collected(gauges) == first
        finally:
            engine.dispose()
