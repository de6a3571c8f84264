"""What only a real HTTP server shows: chunked bodies, header limits, no redirects."""

from __future__ import annotations

import socket
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


def test_a_body_cut_short_of_its_declared_length_is_refused_unverified(
    server: httpx.Client, sessions: sessionmaker[Session]
) -> None:
    # The sender stops writing ten bytes early: the receiver must see a broken request
    # (400), not a body whose signature fails (401) nor one it stores.
    body, headers = signed_delivery(make_event())
    head = f"POST /webhooks/rivya HTTP/1.1\r\nHost: receiver\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection(
        (server.base_url.host, server.base_url.port or 80), timeout=10
    ) as sock:
        sock.sendall(head.encode() + b"\r\n" + body[:-10])
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while block := sock.recv(4096):
            answer += block
    assert answer.split(b"\r\n", 1)[0] == b"HTTP/1.1 400 BAD REQUEST"
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
