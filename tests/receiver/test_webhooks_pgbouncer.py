"""The web role behind PgBouncer in transaction pooling: every delivery stored, none refused.

Server connections are handed out in turn (tests/support/pgbouncer.py), so a statement
psycopg prepared on one is missing on the next: DATABASE_POOLER=pgbouncer must turn
preparing off for the app's engine and for the receiver's own raw cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, func, select

from models.events import WebhookEvent
from rivyahooks_foundation.settings import Settings
from tests.conftest import make_event, signed_delivery
from tests.support.pgbouncer import pgbouncer

pytestmark = pytest.mark.postgres
# Well past psycopg's prepare threshold (a statement's 5th run), for every statement.
DELIVERIES = 12


@pytest.fixture
def bounced_url(postgres_url: str, postgres_engine: Any, tmp_path: Path) -> Iterator[str]:
    with pgbouncer(postgres_url, tmp_path / "pgbouncer") as url:
        yield url


def test_deliveries_through_transaction_pooling_are_all_stored(
    settings: Settings,
    bounced_url: str,
    postgres_engine: Engine,
    make_app: Callable[[Settings], Flask],
) -> None:
    app = make_app(settings.replace(database_url=bounced_url, database_pooler="pgbouncer"))
    client = app.test_client()
    events = [make_event() for _ in range(DELIVERIES)]

    for event in events:
        body, headers = signed_delivery(event)
        assert client.post("/webhooks/rivya", data=body, headers=headers).status_code == 202
        # The same again: a duplicate, answered by the same statement.
        assert client.post("/webhooks/rivya", data=body, headers=headers).status_code == 200
        assert client.get("/readyz").status_code == 200

    with postgres_engine.connect() as connection:
        stored = connection.scalar(select(func.count()).select_from(WebhookEvent))
    assert stored == DELIVERIES
