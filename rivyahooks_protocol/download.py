"""Download a generation's result file: streamed, hashed, bounded, and never to a private host.

Result URLs come from Rivya's responses and webhooks, so they are treated as untrusted:

- only https, and only hosts whose every resolved address is global (Python's `is_global`:
  no loopback, private, shared (100.64/10), link-local, site-local, reserved, multicast,
  documentation or unspecified address; an IPv4 address embedded in an IPv6 one — mapped,
  6to4, Teredo, NAT64 — is checked as the IPv4 address it reaches), unless the host is
  listed in `allowed_hosts` (the simulator on http://127.0.0.1, for example);
- the host is resolved once, and the connection goes to the address that was checked: a
  DNS answer that changes in between (rebinding) cannot send it elsewhere. The URL's host
  still goes in the Host header and TLS's SNI, and the certificate is verified for it;
- no Authorization header ever (a separate client without the API key), no cookies, no
  redirects (a 3xx is an error: following it would need the policy checked again);
- the body is streamed to a sink (anything with `write(bytes)`: a file, an upload) in chunks
  with its sha256 and size computed on the way, the size bounded by `max_bytes`, and
  compared with Content-Length at the end. On an error the sink holds a partial body: the
  caller discards it. An error the sink raises (a full disk) leaves unchanged: it is the
  sink's, not the download's;
- before the first byte is written, `reserve` (when given) hears the announced size (None
  when the server announces none) and may refuse by raising: the caller's way to check its
  storage has room, without this module knowing any storage.

"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from rivyahooks_protocol import contract
from rivyahooks_protocol.backoff import parse_retry_after
from rivyahooks_protocol.errors import (
    DisallowedURLError,
    DownloadFailedError,
    DownloadIncompleteError,
    DownloadTooLargeError,
    DownloadTransientError,
    ResultExpiredError,
)
from rivyahooks_protocol.host_pools import PoolPerHost

Resolver = Callable[[str, int], Iterable[str]]
# Hears the announced size before the body is written; raises to refuse the download.
Reserve = Callable[[int | None], object]


class Sink(Protocol):
    """Where the body goes, chunk by chunk."""

    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True)
class DownloadResult:
    """What was written to the sink."""

    sha256: str
    size: int
    content_type: str | None
    host: str


def resolve_addresses(host: str, port: int) -> list[str]:
    """Return every address `host` resolves to."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


# NAT64: the well-known prefix and the local-use one carry an IPv4 address in the last 32 bits.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated, and `is_global` on Python 3.11


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Return the IPv4 addresses an IPv6 address reaches: mapped, 6to4, Teredo, NAT64."""
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if any(ip in network for network in _NAT64):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded:
            return all(_is_public(str(v4)) for v4 in embedded)
        if ip in _SITE_LOCAL:
            return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _host_allowed(host: str, port: int | None, allowed_hosts: Iterable[str]) -> bool:
    names = {host}
    if port is not None:
        names.add(f"{host}:{port}")
        names.add(f"[{host}]:{port}")
    names.add(f"[{host}]")
    return any(entry.strip().lower() in names for entry in allowed_hosts)


def check_url(
    url: str, allowed_hosts: Iterable[str] = (), resolve: Resolver = resolve_addresses
) -> str:
    """Return the URL's host if the download policy allows it, else raise DisallowedURLError."""
    return checked_target(url, allowed_hosts, resolve).host


@dataclass(frozen=True)
class Target:
    """Where a download may go: the URL's host and the checked addresses to connect to.

    `addresses` is empty for a host of `allowed_hosts`: nothing was checked, so the
    connection resolves it as usual.
    """

    host: str
    addresses: tuple[str, ...]


def checked_target(
    url: str, allowed_hosts: Iterable[str] = (), resolve: Resolver = resolve_addresses
) -> Target:
    """Return the URL's host and its checked addresses, else raise DisallowedURLError."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DisallowedURLError("the URL cannot be parsed") from None
    host = (parts.hostname or "").lower()
    if not host:
        raise DisallowedURLError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise DisallowedURLError("the URL carries credentials")
    allowed = _host_allowed(host, port, allowed_hosts)
    if parts.scheme != "https" and not (allowed and parts.scheme == "http"):
        raise DisallowedURLError(f"scheme {parts.scheme!r} is not allowed for {host}")
    if allowed:
        return Target(host, ())
    default_port = 443 if parts.scheme == "https" else 80
    if _is_ip_literal(host):
        # The address is in the URL itself: check it as written, resolve nothing.
        addresses = [host]
    else:
        try:
            addresses = list(resolve(host, port or default_port))
        except (OSError, UnicodeError):
            raise DisallowedURLError(f"{host} does not resolve") from None
    if not addresses:
        raise DisallowedURLError(f"{host} does not resolve")
    for address in addresses:
        try:
            public = _is_public(address)
        except ValueError:
            public = False
        if not public:
            raise DisallowedURLError(f"{host} resolves to a non-public address {address}")
    # In order, once each: the connection tries the next only if one cannot be reached.
    return Target(host, tuple(dict.fromkeys(addresses)))


def download_result(
    url: str,
    sink: Sink,
    *,
    allowed_hosts: Iterable[str],
    max_bytes: int,
    timeout_seconds: float,
    deadline: float | None = None,
    http_client: httpx.Client | None = None,
    resolve: Resolver = resolve_addresses,
    reserve: Reserve | None = None,
) -> DownloadResult:
    """Stream `url` into `sink`; raise a DownloadError (or DisallowedURLError) on failure.

    `timeout_seconds` bounds each network wait; `deadline` (a time.monotonic() value), when
    given, bounds the whole download: a server dripping bytes just fast enough to beat the
    read timeout cannot hold a worker past it. `reserve` is called with the announced size
    (or None) once the headers are in and before anything is written; what it raises ends
    the download as it is.
    """
    target = checked_target(url, allowed_hosts, resolve)
    own_client = http_client is None
    client = http_client or httpx.Client(
        follow_redirects=False, timeout=httpx.Timeout(timeout_seconds), transport=PoolPerHost()
    )
    try:
        return _stream(client, url, sink, target, max_bytes, timeout_seconds, deadline, reserve)
    finally:
        if own_client:
            client.close()


def pinned_request(
    client: httpx.Client,
    url: str,
    address: str | None,
    timeout_seconds: float,
    *,
    method: str = "GET",
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Request:
    """Build the request of `url`, sent to `address` (if given) in place of resolving its host.

    The URL's host stays what the server sees (Host) and what TLS names and verifies (SNI):
    only where the connection goes changes.
    """
    # identity: Content-Length then counts the bytes we store, and no decompression bomb.
    headers = {"Accept-Encoding": "identity", **(headers or {})}
    extensions: dict[str, Any] = {}
    try:
        target = httpx.URL(url)
        if address is not None:
            headers["Host"] = target.netloc.decode("ascii")
            extensions["sni_hostname"] = target.raw_host.decode("ascii")
            target = target.copy_with(host=address)
        request = client.build_request(
            method,
            target,
            headers=headers,
            content=content,
            timeout=timeout_seconds,
            extensions=extensions,
        )
    except httpx.InvalidURL as exc:
        # urlsplit (check_url) is laxer than httpx: a URL only httpx refuses is still unusable.
        raise DisallowedURLError(f"the URL is not usable: {exc}") from None
    # A caller's client may carry default headers; the result host must never see a key.
    for name in ("Authorization", "Cookie", "Proxy-Authorization"):
        request.headers.pop(name, None)
    return request


def _send(client: httpx.Client, url: str, target: Target, timeout_seconds: float) -> httpx.Response:
    """Open the response from the first checked address that can be reached."""
    addresses: tuple[str | None, ...] = target.addresses or (None,)
    for position, address in enumerate(addresses):
        request = pinned_request(client, url, address, timeout_seconds)
        try:
            return client.send(request, stream=True, follow_redirects=False)
        except httpx.UnsupportedProtocol as exc:
            raise DisallowedURLError(f"the URL is not usable: {exc}") from None
        except httpx.ConnectError as exc:
            if position + 1 < len(addresses):
                continue  # an address of the host that does not answer: try the next
            raise DownloadTransientError(
                f"{type(exc).__name__} connecting to {target.host}"
            ) from None
        except httpx.TransportError as exc:
            raise DownloadTransientError(
                f"{type(exc).__name__} connecting to {target.host}"
            ) from None
    raise AssertionError("unreachable: at least one address is tried")


def _stream(
    client: httpx.Client,
    url: str,
    sink: Sink,
    target: Target,
    max_bytes: int,
    timeout_seconds: float,
    deadline: float | None,
    reserve: Reserve | None = None,
) -> DownloadResult:
    host = target.host
    if deadline is not None:
        timeout_seconds = min(timeout_seconds, _remaining(deadline, host, 0))
    response = _send(client, url, target, timeout_seconds)
    try:
        _check_status(response, host)
        expected = _content_length(response)
        if expected is not None and expected > max_bytes:
            raise DownloadTooLargeError(
                f"{host} announces {expected} bytes, more than the maximum {max_bytes}"
            )
        if reserve is not None:
            reserve(expected)
        digest = hashlib.sha256()
        size = 0
        try:
            # Chunks as they come off the socket: asking httpx for fixed sizes made it copy
            # every byte once more to re-cut them, for nothing.
            for chunk in response.iter_raw():
                size += len(chunk)
                if size > max_bytes:
                    raise DownloadTooLargeError(
                        f"{host} sent more than the maximum {max_bytes} bytes"
                    )
                digest.update(chunk)
                sink.write(chunk)
                if deadline is not None:
                    _remaining(deadline, host, size)
        except httpx.TransportError as exc:
            raise DownloadIncompleteError(
                f"{type(exc).__name__} after {size} bytes from {host}"
            ) from None
        if expected is not None and size != expected:
            raise DownloadIncompleteError(f"{host} sent {size} of {expected} announced bytes")
        return DownloadResult(
            sha256=digest.hexdigest(),
            size=size,
            content_type=response.headers.get("Content-Type"),
            host=host,
        )
    finally:
        response.close()


def _remaining(deadline: float, host: str, size: int) -> float:
    """Return the seconds left before `deadline`, or raise once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise DownloadTransientError(f"the download deadline passed after {size} bytes from {host}")
    return left


def _check_status(response: httpx.Response, host: str) -> None:
    status = response.status_code
    if status == 200:
        return
    if status in contract.EXPIRED_URL_STATUSES:
        raise ResultExpiredError(f"{host} answered {status}: the URL has expired", status=status)
    if status == 429 or status >= 500:
        raise DownloadTransientError(
            f"{host} answered {status}",
            status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    raise DownloadFailedError(f"{host} answered {status}", status=status)


def _content_length(response: httpx.Response) -> int | None:
    raw: Any = response.headers.get("Content-Length")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise DownloadFailedError("the Content-Length header is not a number") from None
    return value if value >= 0 else None
