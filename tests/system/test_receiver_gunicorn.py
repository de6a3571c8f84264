"""What only a real HTTP server shows: chunked bodies, header limits, no redirects."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.events import WebhookEvent
from rivyahooks_foundation.settings import Settings
from tests.conftest import SECRET, make_event, signed_delivery
from tests.support.processes import gunicorn

LIMIT = 4096


@pytest.fixture(scope="module")
def server(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    # The broker is a file, not the shared Redis: these tests look at answers and rows only.
    broker = tmp_path_factory.mktemp("broker") / "broker.sqlite3"
    settings = Settings(
        database_url=postgres_url,
        broker_url=f"sqla+sqlite:///{broker}",
        webhook_secrets=(SECRET,),
        webhook_max_body_bytes=LIMIT,
    )
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    with (
        gunicorn(settings, workers=1, threads=4, log=log) as url,
        httpx.Client(base_url=url, timeout=10, follow_redirects=False) as client,
    ):
        yield client


def count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(WebhookEvent)) or 0)


def chunks(body: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_chunked_body_under_the_limit_is_taken(
    server: httpx.Client, sessions: sessionmaker[Session]
) -> None:
    body, headers = signed_delivery(make_event() | {"pad": "x" * (LIMIT - 1000)})
    assert len(body) < LIMIT
    response = server.post("/webhooks/rivya", content=chunks(body), headers=headers)
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 202
    assert count(sessions) == 1


def sized(length: int) -> tuple[bytes, dict[str, str]]:
    """Return a signed delivery whose body is exactly `length` bytes."""
    event = make_event() | {"pad": ""}
    base = len(signed_delivery(event)[0])
    return signed_delivery(event | {"pad": "x" * (length - base)})


@pytest.mark.parametrize(("length", "status"), [(LIMIT, 202), (LIMIT + 1, 413)])
def test_chunked_body_at_the_limit(
    server: httpx.Client, sessions: sessionmaker[Session], length: int, status: int
) -> None:
    body, headers = sized(length)
    assert len(body) == length
    response = server.post("/webhooks/rivya", content=chunks(body), headers=headers)
    assert response.status_code == status
    assert count(sessions) == (1 if status == 202 else 0)


def test_chunked_body_over_the_limit_is_refused(
    server: httpx.Client, sessions: sessionmaker[Session]
) -> None:
    body, headers = signed_delivery(make_event() | {"pad": "x" * LIMIT})
    response = server.post("/webhooks/rivya", content=chunks(body), headers=headers)
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 413
    assert response.json() == {"error": {"code": "body_too_large"}}
    assert count(sessions) == 0


def test_declared_length_over_the_limit_is_refused(
    server: httpx.Client, sessions: sessionmaker[Session]
) -> None:
    body, headers = signed_delivery(make_event() | {"pad": "x" * LIMIT})
    response = server.post("/webhooks/rivya", content=body, headers=headers)
    assert response.status_code == 413
    assert count(sessions) == 0


@pytest.mark.parametrize("path", ["/webhooks/rivya", "/webhooks/rivya/"])
def test_both_spellings_answer_without_redirect(
    server: httpx.Client, sessions: sessionmaker[Session], path: str
) -> None:
    body, headers = signed_delivery(make_event())
    assert server.post(path, content=body, headers=headers).status_code == 202
    assert server.get(path).status_code == 405
    assert server.put(path, content=body, headers=headers).status_code == 405
    assert count(sessions) == 1


def test_oversized_headers_are_refused_by_the_server(
    server: httpx.Client, sessions: sessionmaker[Session]
) -> None:
    body, headers = signed_delivery(make_event())
    headers["webhook-signature"] += " v1," + "A" * 9000
    response = server.post("/webhooks/rivya", content=body, headers=headers)
    assert 400 <= response.status_code < 500
    assert count(sessions) == 0
