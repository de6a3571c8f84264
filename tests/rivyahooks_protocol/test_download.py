"""download_result: URL policy before any connection, and streamed downloads from the simulator."""

from __future__ import annotations

import errno
import io
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest
from werkzeug.wrappers import Request, Response

from rivyahooks_protocol.download import check_url, download_result
from rivyahooks_protocol.errors import (
    DisallowedURLError,
    DownloadIncompleteError,
    DownloadTooLargeError,
    DownloadTransientError,
    ResultExpiredError,
)
from rivyahooks_simulator import SimConfig, Simulator, result_bytes_sha256
from tests.support.httpserver import serving

KEY = "rvya_sk_download_test"
ALLOWED = ("127.0.0.1",)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimConfig(
        queued_seconds=0, processing_seconds=0, failure_ratio=0, output_bytes=300_000, outputs=2
    )
    with Simulator(api_keys={KEY: None}, config=config, seed=3) as simulator:
        yield simulator


def _succeeded(sim: Simulator, **options: object) -> tuple[str, list[str]]:
    (task_id,) = sim.scenario(1, outcome="succeeded", **options)
    (generation,) = sim.wait_terminal([task_id])
    return task_id, generation["result"]["urls"]


def _fetch(url: str, dest: Path, max_bytes: int = 10**9, **kw: object) -> object:
    with dest.open("wb") as sink:
        return download_result(
            url, sink, allowed_hosts=ALLOWED, max_bytes=max_bytes, timeout_seconds=5, **kw
        )


# --- URL policy -----------------------------------------------------------------------


def _no_network() -> httpx.Client:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"a connection was attempted to {request.url}")

    return httpx.Client(transport=httpx.MockTransport(refuse))


def _public_resolver(host: str, port: int) -> Iterable[str]:
    return ["93.184.216.34"]


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/result.png",  # http to a public host
        "https://127.0.0.1/result.png",  # loopback, not allowed
        "https://10.1.2.3/result.png",  # private
        "https://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
        "https://[::1]/result.png",  # IPv6 loopback
        "https://[::ffff:127.0.0.1]/x",  # IPv4-mapped loopback
        "https://0.0.0.0/x",  # unspecified
        "https://224.0.0.1/x",  # multicast
        "https://user:pw@example.com/x",  # credentials in the URL
        "file:///etc/passwd",
        "https:///no-host",
    ],
)
def test_disallowed_urls_raise_before_any_connection(url: str) -> None:
    sink = io.BytesIO()
    with _no_network() as client, pytest.raises(DisallowedURLError):
        download_result(
            url,
            sink,
            allowed_hosts=(),
            max_bytes=100,
            timeout_seconds=1,
            http_client=client,
            resolve=_public_resolver,
        )
    assert sink.getvalue() == b""


def test_host_resolving_to_a_private_address_is_refused() -> None:
    def resolver(host: str, port: int) -> Iterable[str]:
        return ["93.184.216.34", "192.168.1.10"]  # one bad address is enough

    with pytest.raises(DisallowedURLError, match="non-public"):
        check_url("https://cdn.example.com/x", (), resolver)


def test_public_https_host_is_allowed() -> None:
    assert check_url("https://CDN.example.com/x", (), _public_resolver) == "cdn.example.com"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8900/x", ("127.0.0.1",)),
        ("http://127.0.0.1:8900/x", ("127.0.0.1:8900",)),
        ("http://LOCALHOST:8900/x", ("localhost",)),
        ("http://[::1]:8900/x", ("[::1]:8900",)),
    ],
)
def test_allowed_hosts_permit_http_and_private_addresses(
    url: str, allowed: tuple[str, ...]
) -> None:
    check_url(url, allowed, _public_resolver)


def test_allowed_host_with_other_port_is_still_refused() -> None:
    with pytest.raises(DisallowedURLError):
        check_url("http://127.0.0.1:9999/x", ("127.0.0.1:8900",), _public_resolver)


# --- downloads from the simulator -------------------------------------------------------


def test_download_streams_hashes_and_sends_no_authorization(sim: Simulator, tmp_path: Path) -> None:
    task_id, urls = _succeeded(sim)
    # Even a client that carries a key by default must not send it to the result host.
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}) as keyed:
        for index, url in enumerate(urls):
            dest = tmp_path / f"out{index}"
            result = _fetch(url, dest, http_client=keyed)
            assert result.sha256 == result_bytes_sha256(task_id, index, 300_000)  # type: ignore[attr-defined]
            assert result.size == dest.stat().st_size == 300_000  # type: ignore[attr-defined]
            assert result.content_type == "image/png"  # type: ignore[attr-defined]
            assert result.host == "127.0.0.1"  # type: ignore[attr-defined]
    result_requests = sim.requests("/results/")
    assert len(result_requests) == 2
    assert not any(r["authorization"] for r in result_requests)


def test_cut_download_is_incomplete(sim: Simulator, tmp_path: Path) -> None:
    _, urls = _succeeded(sim)
    sim.set_faults(next_download_faults=["cut"])
    with pytest.raises(DownloadIncompleteError) as info:
        _fetch(urls[0], tmp_path / "out")
    assert info.value.retryable
    # The sink holds a partial body: the storage's staging discards it (test_storage.py).
    assert (tmp_path / "out").stat().st_size < 300_000
    assert sim.requests("/results/")[-1]["fault"] == "cut"


def test_cut_download_ratio(sim: Simulator, tmp_path: Path) -> None:
    _, urls = _succeeded(sim)
    sim.set_faults(cut_download_ratio=1.0)
    with pytest.raises(DownloadIncompleteError):
        _fetch(urls[0], tmp_path / "out")


def test_expired_url_then_fresh_url_from_refetch(sim: Simulator, tmp_path: Path) -> None:
    sim.set_config(url_ttl_seconds=0)
    task_id, urls = _succeeded(sim)
    with pytest.raises(ResultExpiredError) as info:
        _fetch(urls[0], tmp_path / "out")
    assert info.value.status == 410
    assert not info.value.retryable
    sim.set_config(url_ttl_seconds=60)
    fresh = sim.generation(task_id)["result"]["urls"][0]
    assert fresh != urls[0]
    assert _fetch(fresh, tmp_path / "out").size == 300_000  # type: ignore[attr-defined]


def test_expire_early_fault(sim: Simulator, tmp_path: Path) -> None:
    sim.set_faults(expire_early_ratio=1.0)
    _, urls = _succeeded(sim)
    with pytest.raises(ResultExpiredError):
        _fetch(urls[0], tmp_path / "out")


def test_too_large_by_content_length_and_while_streaming(sim: Simulator, tmp_path: Path) -> None:
    _, urls = _succeeded(sim)
    with pytest.raises(DownloadTooLargeError) as info:
        _fetch(urls[0], tmp_path / "out", max_bytes=1000)
    assert not info.value.retryable
    assert (tmp_path / "out").stat().st_size == 0


def test_server_errors_are_transient_with_retry_after(sim: Simulator, tmp_path: Path) -> None:
    _, urls = _succeeded(sim)
    sim.set_faults(next_download_faults=["rate_limited", "error"], retry_after_seconds=3)
    with pytest.raises(DownloadTransientError) as info:
        _fetch(urls[0], tmp_path / "out")
    assert info.value.status == 429
    assert info.value.retry_after == 3
    with pytest.raises(DownloadTransientError) as info:
        _fetch(urls[0], tmp_path / "out")
    assert info.value.status == 503
    assert info.value.retryable


def test_tampered_url_is_refused_by_the_simulator(sim: Simulator, tmp_path: Path) -> None:
    _, urls = _succeeded(sim)
    with pytest.raises(ResultExpiredError):  # 403: treated like an expired link
        _fetch(urls[0].replace("sig=", "sig=0"), tmp_path / "out")


def test_a_dripping_server_cannot_outlast_the_download_deadline(tmp_path: Path) -> None:
    # Each byte comes well within the read timeout, so only a total deadline stops it.
    def drip(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            for _ in range(600):
                time.sleep(0.05)
                yield b"x"

        return Response(body(), headers={"Content-Length": "600"})

    dest = tmp_path / "dripped"
    with serving(drip) as url:
        started = time.monotonic()
        with pytest.raises(DownloadTransientError, match="deadline passed"):
            _fetch(f"{url}/result", dest, deadline=time.monotonic() + 1.0)
        elapsed = time.monotonic() - started
    # The deadline, plus at most one read's wait; never the 30 s the drip would take.
    assert elapsed < 1.0 + 5
    assert dest.stat().st_size < 600


def test_a_url_only_httpx_refuses_is_disallowed_without_a_connection(tmp_path: Path) -> None:
    with pytest.raises(DisallowedURLError, match="not usable"):
        download_result(
            "http://127.0.0.1:9/result\x7f",
            io.BytesIO(),
            allowed_hosts=ALLOWED,
            max_bytes=10,
            timeout_seconds=5,
            http_client=_no_network(),
        )


# --- the sink and its room ------------------------------------------------------------------


class NoRoom(Exception):
    """What a caller's reserve raises to refuse a download."""


def test_reserve_hears_the_announced_size_before_anything_is_written(sim: Simulator) -> None:
    _, urls = _succeeded(sim)
    sink = io.BytesIO()
    heard: list[tuple[int | None, int]] = []
    download_result(
        urls[0],
        sink,
        allowed_hosts=ALLOWED,
        max_bytes=10**9,
        timeout_seconds=5,
        reserve=lambda size: heard.append((size, sink.tell())),
    )
    assert heard == [(300_000, 0)]
    assert sink.tell() == 300_000


def test_a_refusing_reserve_ends_the_download_before_a_byte_is_written(sim: Simulator) -> None:
    _, urls = _succeeded(sim)
    sink = io.BytesIO()

    def refuse(size: int | None) -> None:
        raise NoRoom(f"no room for {size}")

    with pytest.raises(NoRoom, match="no room for 300000"):
        download_result(
            urls[0], sink, allowed_hosts=ALLOWED, max_bytes=10**9, timeout_seconds=5, reserve=refuse
        )
    assert sink.getvalue() == b""


def test_reserve_hears_none_when_no_size_is_announced() -> None:
    def unannounced(request: Request) -> Response:
        return Response(iter([b"a" * 1000, b"b" * 1000]))  # chunked: no Content-Length

    heard: list[int | None] = []
    with serving(unannounced) as url:
        result = download_result(
            f"{url}/result",
            io.BytesIO(),
            allowed_hosts=ALLOWED,
            max_bytes=10**9,
            timeout_seconds=5,
            reserve=heard.append,
        )
    assert heard == [None]
    assert result.size == 2000


class FillingSink:
    """A sink whose disk fills after `room` bytes, as a file's write would fail."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.written = 0

    def write(self, data: bytes, /) -> int:
        if self.written + len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.written += len(data)
        return len(data)


def test_an_error_of_the_sink_mid_body_passes_unchanged(sim: Simulator, tmp_path: Path) -> None:
    _, urls = _succeeded(sim)
    with httpx.Client() as client:
        with pytest.raises(OSError, match="No space left") as raised:
            download_result(
                urls[0],
                FillingSink(100_000),
                allowed_hosts=ALLOWED,
                max_bytes=10**9,
                timeout_seconds=5,
                http_client=client,
            )
        # The sink's own error, not a download error: the caller tells a full disk from a
        # broken connection by it.
        assert raised.value.errno == errno.ENOSPC
        # The response was released: the same client downloads the next file whole.
        result = _fetch(urls[1], tmp_path / "next", http_client=client)
        assert result.size == 300_000  # type: ignore[attr-defined]
