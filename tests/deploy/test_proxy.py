"""deploy/nginx/nginx.conf in front of the repository's gunicorn: what reaches the web role.

Debian's nginx runs the kit's configuration (rendered for free ports) in front of gunicorn
started with rivyahooks/gunicorn_conf.py, one worker with four threads: the pool the issue
measured four slow sockets exhausting. Deliveries are real, stored in PostgreSQL.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select

from models.events import WebhookEvent
from rivyahooks_foundation.settings import Settings
from tests.conftest import SECRET, make_event, reference_signed
from tests.support.eventually import eventually
from tests.support.nginx import Proxy, nginx_proxy
from tests.support.processes import gunicorn, own_redis_database

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

REDIS_DB = 11
SLOW_CLIENTS = 200
DELIVERIES = 20
ANSWER_WITHIN_SECONDS = 1.0
BODY_LIMIT = 1024 * 1024  # client_max_body_size in nginx.conf and the receiver's default

HEADERS_ONLY = b"POST /webhooks/rivya HTTP/1.1\r\nHost: hooks\r\nX-Slow: "
HEADERS_THEN_BODY = (
    b"POST /webhooks/rivya HTTP/1.1\r\nHost: hooks\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n{"
)


class Drippers:
    """Connections that send the start of a request, then one more byte every second."""

    def __init__(self, url: str, start: bytes, count: int) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sockets = [
            socket.create_connection((host, int(port)), timeout=5) for _ in range(count)
        ]
        for sock in self.sockets:
            sock.sendall(start)
        self.rounds = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)
        self._thread.start()

    @property
    def open(self) -> int:
        with self._lock:
            return len(self.sockets)

    def _drip(self) -> None:
        # The pace of a slow client, not a wait for anything: one byte a second each.
        while not self._stop.wait(1.0):
            with self._lock:
                for sock in list(self.sockets):
                    try:
                        sock.send(b"a")
                    except OSError:
                        self.sockets.remove(sock)
                        self.dropped += 1
                        sock.close()
                self.rounds += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def web(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[str]:
    """gunicorn with rivyahooks/gunicorn_conf.py: one worker, four threads."""
    settings = Settings(
        database_url=postgres_url,
        broker_url=own_redis_database(redis_url, REDIS_DB),
        webhook_secrets=(SECRET,),
    )
    with gunicorn(settings, workers=1, threads=4, log=tmp_path / "web.log") as url:
        yield url


@pytest.fixture
def proxy(web: str, tmp_path: Path) -> Iterator[Proxy]:
    with nginx_proxy(web.removeprefix("http://"), tmp_path / "nginx") as proxy:
        yield proxy


def stored(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(WebhookEvent)) or 0)


def deliver(client: httpx.Client, path: str = "/webhooks/rivya") -> tuple[int, float]:
    """Send one signed delivery; return its status and how long the answer took."""
    body, headers = reference_signed(make_event())
    started = time.monotonic()
    response = client.post(path, content=body, headers=headers)
    return response.status_code, time.monotonic() - started


def test_two_hundred_dripping_clients_do_not_delay_deliveries(
    proxy: Proxy, postgres_engine: Engine
) -> None:
    half = SLOW_CLIENTS // 2
    slow_headers = Drippers(proxy.public_url, HEADERS_ONLY, half)
    slow_bodies = Drippers(proxy.public_url, HEADERS_THEN_BODY, SLOW_CLIENTS - half)
    try:
        eventually(lambda: slow_headers.rounds >= 2 and slow_bodies.rounds >= 2, 10, "dripping")
        answers = []
        with httpx.Client(base_url=proxy.public_url, timeout=10) as client:
            for _ in range(DELIVERIES):
                open_before = slow_headers.open + slow_bodies.open
                status, seconds = deliver(client)
                answers.append((status, seconds, open_before))
        assert [a for a in answers if a[0] != 202 or a[1] >= ANSWER_WITHIN_SECONDS] == []
        # Every slow client was still connected (and sending) when the first delivery went
        # through, and the ones sending a body still are.
        assert answers[0][2] == SLOW_CLIENTS
        assert slow_bodies.open == SLOW_CLIENTS - half
        assert stored(postgres_engine) == DELIVERIES
        print(f"answered in {max(a[1] for a in answers) * 1000:.0f} ms at most")

        # client_header_timeout bounds the whole header, however slowly it trickles in;
        # client_body_timeout only the pause between two reads, so a dripping body stays.
        eventually(lambda: slow_headers.open == 0, 30, "nginx dropping the dripping headers")
        assert slow_bodies.open == SLOW_CLIENTS - half
    finally:
        slow_headers.close()
        slow_bodies.close()


def test_without_the_proxy_four_dripping_clients_hold_every_thread(
    web: str, postgres_engine: Engine
) -> None:
    """The contrast: the same slow clients straight at gunicorn stall a genuine delivery."""
    slow = Drippers(web, HEADERS_THEN_BODY, 4)
    try:
        eventually(lambda: slow.rounds >= 2, 10, "dripping")
        body, headers = reference_signed(make_event())
        with httpx.Client(base_url=web, timeout=3) as client, pytest.raises(httpx.ReadTimeout):
            client.post("/webhooks/rivya", content=body, headers=headers)
        assert stored(postgres_engine) == 0
    finally:
        slow.close()


def test_public_listener_forwards_only_deliveries_and_health(
    proxy: Proxy, web: str, postgres_engine: Engine
) -> None:
    public = httpx.Client(base_url=proxy.public_url, timeout=10, follow_redirects=False)
    internal = httpx.Client(base_url=proxy.internal_url, timeout=10, follow_redirects=False)
    direct = httpx.Client(base_url=web, timeout=10, follow_redirects=False)
    with public, internal, direct:
        assert deliver(public)[0] == 202
        assert deliver(public, "/webhooks/rivya/")[0] == 202
        assert stored(postgres_engine) == 2
        assert public.get("/healthz").status_code == 200

        for method in ("GET", "PUT", "DELETE"):
            assert public.request(method, "/webhooks/rivya").status_code == 405
        for path in ("/readyz", "/metrics", "/results", "/results/task_1", "/console/", "/"):
            answer = public.get(path)
            assert (answer.status_code, answer.json()) == (404, {"error": "not_found"}), path
            # The internal listener hands the same request to the web role untouched.
            assert internal.get(path).status_code == direct.get(path).status_code, path

        # Too large: nginx answers 413 before gunicorn sees a byte.
        body, headers = reference_signed(make_event())
        oversized = body + b" " * (BODY_LIMIT + 1 - len(body))
        assert public.post("/webhooks/rivya", content=oversized, headers=headers).status_code == (
            413
        )
        assert stored(postgres_engine) == 2

        # What the public side forwards is the path it allowed, normalised: never the raw
        # request line, which would reach a route of the internal side.
        health = public.get("/healthz").json()
        sneaky = public.get("/results/..%2Fhealthz")
        assert (sneaky.status_code, sneaky.json()) == (200, health)
        assert deliver(public, "/results/..%2Fwebhooks/rivya")[0] == 202
        assert stored(postgres_engine) == 3

        # Rivya follows no redirects: the public side answers none, whatever the spelling.
        for path in (
            "/webhooks/rivya//",
            "//webhooks/rivya",
            "/webhooks",
            "/healthz/",
            "//healthz",
        ):
            assert public.post(path).status_code == 404, path
            assert public.get(path).status_code == 404, path
