"""One connection pool per host name, so a pinned request never rides another name's connection.

`download.pinned_request` sends a request to an address checked in advance, with the URL's
host rewritten to that address and the name kept for Host and TLS (SNI). httpx pools
connections by the URL's scheme, host and port: two names that resolve to one address would
share a pooled connection, and a request for the second name would travel over a TLS
session whose certificate was checked for the first. Keyed by the name, each pool only ever
holds connections made and verified for that name.

The names come from configuration (DOWNLOAD_ALLOWED_HOSTS, registered apps), not from
senders; the pools are still bounded, the least recently used closed first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import httpx

MAX_HOSTS = 256


class PoolPerHost(httpx.BaseTransport):
    """An httpx transport that keeps a connection pool of its own for each host name."""

    def __init__(self, max_hosts: int = MAX_HOSTS, **transport_options: Any) -> None:
        self._options = transport_options
        self._max_hosts = max_hosts
        self._pools: OrderedDict[tuple[str, str], httpx.HTTPTransport] = OrderedDict()
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._pool(request).handle_request(request)

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()

    def _pool(self, request: httpx.Request) -> httpx.HTTPTransport:
        # The name the request is for: httpx sets Host from the URL, and a pinned request
        # keeps the name there while its URL carries the address.
        name = request.headers["Host"]
        key = (request.url.scheme, name.lower())
        evicted = None
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = httpx.HTTPTransport(**self._options)
                if len(self._pools) > self._max_hosts:
                    _, evicted = self._pools.popitem(last=False)
            else:
                self._pools.move_to_end(key)
        if evicted is not None:
            evicted.close()
        return pool
