"""The apps pages: the list, an app with its attempts paged, a replay preview; never a secret."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from models.apps import App, public_key_of
from models.base import utcnow
from models.outbound import DeliveryStatus
from tests.receiver.console.conftest import (
    ADMIN_TOKEN,
    APP_SECRET,
    READONLY_TOKEN,
    delivery_status,
    log_in,
    store_app,
    store_delivery,
)


def test_list_and_detail_show_the_apps_and_never_a_secret(
    console_app: Flask, sessions: sessionmaker[Session]
) -> None:
    shop = store_app(sessions, "shop", ed25519=True)
    store_app(
        sessions,
        "archive",
        enabled=False,
        disabled_reason="endpoint answered 410 Gone",
        failing_since=utcnow() - dt.timedelta(days=5),
    )
    store_delivery(sessions, shop, DeliveryStatus.PENDING)
    store_delivery(sessions, shop, DeliveryStatus.FAILED, response="bad gateway")
    with sessions() as session:
        app = session.get(App, shop)
        assert app is not None
        public_key, previous = public_key_of(app), app.previous_secret
        seed = app.signing_key
    assert public_key
    assert previous
    assert seed
    client = console_app.test_client()
    log_in(client, ADMIN_TOKEN)
    listing = client.get("/console/apps").text
    assert 'href="/console/apps/shop"' in listing
    assert re.search(r'data-app="shop">.*?<td class="num">1</td>', listing, re.S)  # backlog
    assert "endpoint answered 410 Gone" in listing
    assert "https://shop.example/hooks/rivya?…" in listing  # a query may hold a token
    assert 'href="/console/apps"' in client.get("/console/").text  # the nav
    detail = client.get("/console/apps/shop").text
    assert public_key in detail
    assert "bad gateway" in detail
    assert 'id="app-backlog">1<' in detail
    preview = client.get("/console/apps/shop/replay/preview").text
    pages = [listing, detail, preview, client.get("/console/").text]
    for page in pages:
        for secret in (APP_SECRET, previous.decode(), "query-token-of-the-shop"):
            assert secret not in page
        assert seed.hex() not in page
    assert client.get("/console/apps/nothing-here").status_code == 404


def test_a_response_excerpt_is_shown_escaped(
    console_app: Flask, sessions: sessionmaker[Session]
) -> None:
    shop = store_app(sessions)
    store_delivery(
        sessions, shop, DeliveryStatus.FAILED, response="<script>alert('owned')</script>"
    )
    client = console_app.test_client()
    log_in(client, READONLY_TOKEN)
    page = client.get("/console/apps/shop").text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in page


def test_attempts_are_paged_newest_first(
    console_app: Flask, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("receiver.console.apps.PAGE_SIZE", 2)
    shop = store_app(sessions)
    start = utcnow() - dt.timedelta(hours=1)
    ids = [
        store_delivery(
            sessions, shop, DeliveryStatus.FAILED, attempted_at=start + dt.timedelta(minutes=n)
        )
        for n in range(3)
    ]
    client = console_app.test_client()
    log_in(client, READONLY_TOKEN)

    def shown(page: str) -> list[int]:
        return [
            int(n) for n in re.findall(r'<td class="num">(\d+)</td>\s*<td class="num">1<', page)
        ]

    first = client.get("/console/apps/shop").text
    assert shown(first) == [ids[2], ids[1]]
    older = re.search(r'href="([^"]+)" rel="next"', first)
    assert older
    second = client.get("/console/apps/shop" + older.group(1).replace("&amp;", "&")).text
    assert shown(second) == [ids[0]]
    assert 'rel="next"' not in second
    assert client.get("/console/apps/shop?after=not-a-cursor").status_code == 400


def test_readonly_sees_no_action_forms_and_a_preview_changes_nothing(
    console_app: Flask, sessions: sessionmaker[Session]
) -> None:
    shop = store_app(sessions)
    failed = store_delivery(sessions, shop, DeliveryStatus.FAILED)
    store_delivery(sessions, shop, DeliveryStatus.DELIVERED, status_code=200, outcome="delivered")
    client = console_app.test_client()
    log_in(client, READONLY_TOKEN)
    page = client.get("/console/apps/shop").text
    assert 'method="post"' not in page.split("</header>")[1]  # only the header's log-out
    assert "need the admin token" in page
    preview = client.get("/console/apps/shop/replay/preview?failed_only=1").text
    assert 'id="replay-count">1<' in preview
    assert 'id="replay"' not in preview
    assert "needs the admin token" in preview
    everything = client.get("/console/apps/shop/replay/preview").text
    assert 'id="replay-count">2<' in everything
    assert delivery_status(sessions, failed) is DeliveryStatus.FAILED
    assert client.get("/console/apps/shop/replay/preview?since=yesterday").status_code == 400
