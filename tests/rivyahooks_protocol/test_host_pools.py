"""Pinned requests for two names at one address never share a pooled connection."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from rivyahooks_protocol.download import pinned_request
from rivyahooks_protocol.host_pools import PoolPerHost


class _KeepAlive(BaseHTTPRequestHandler):
    """Answers 204 over HTTP/1.1 (connections kept) and notes each request's connection."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, int]]

    def do_GET(self) -> None:
        self.seen.append((self.headers["Host"], self.client_address[1]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[int, list[tuple[str, int]]]]:
    seen: list[tuple[str, int]] = []
    handler = type("Handler", (_KeepAlive,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd.server_address[1], seen
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _send_both_names_twice(client: httpx.Client, port: int) -> None:
    for name in ("apps-one.example", "apps-two.example", "apps-one.example", "apps-two.example"):
        url = f"http://{name}:{port}/hook"
        client.send(pinned_request(client, url, "127.0.0.1", 5)).raise_for_status()


def test_each_name_keeps_its_own_connections(
    server: tuple[int, list[tuple[str, int]]],
) -> None:
    port, seen = server
    with httpx.Client(transport=PoolPerHost()) as client:
        _send_both_names_twice(client, port)
    connections = {name: {peer for host, peer in seen if host == name} for name, _ in seen}
    one, two = connections[f"apps-one.example:{port}"], connections[f"apps-two.example:{port}"]
    assert len(one) == len(two) == 1  # each name's connection is kept and reused
    assert one.isdisjoint(two)


def test_without_it_httpx_would_share_one_connection_across_names(
    server: tuple[int, list[tuple[str, int]]],
) -> None:
    """Why PoolPerHost exists: httpx pools by the URL, whose host is the pinned address."""
    port, seen = server
    with httpx.Client() as client:
        _send_both_names_twice(client, port)
    assert len({peer for _, peer in seen}) == 1


def test_the_least_recently_used_pool_is_closed_beyond_the_bound(
    server: tuple[int, list[tuple[str, int]]],
) -> None:
    port, seen = server
    with httpx.Client(transport=PoolPerHost(max_hosts=1)) as client:
        _send_both_names_twice(client, port)
    assert len({peer for _, peer in seen}) == 4  # each name's pool closed by the other's
