"""What Prometheus reads of the web role: its counters under a real gunicorn, the names."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from flask import Flask
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from rivyahooks_foundation.settings import Settings
from tests.conftest import OTHER_SECRET, SECRET, make_event, signed_delivery
from tests.support.metrics import samples, value
from tests.support.processes import gunicorn

TOKEN = "metrics-token-for-tests"
PATH = "/webhooks/rivya"


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
