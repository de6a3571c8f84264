"""Client retries against the simulator's forced faults: timing, bounds, what is not retried."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from rivyahooks_protocol.client import RivyaClient
from rivyahooks_protocol.errors import (
    RivyaError,
    RivyaNetworkError,
    RivyaNotFound,
    RivyaRateLimited,
    RivyaUnavailable,
)
from rivyahooks_simulator import SimConfig, Simulator

KEY = "rvya_sk_retry_test"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimConfig(queued_seconds=0.01, processing_seconds=0.01, failure_ratio=0)
    with Simulator(api_keys={KEY: None}, config=config, seed=1) as simulator:
        yield simulator


def _client(sim: Simulator, max_attempts: int = 4) -> RivyaClient:
    return RivyaClient(sim.url, KEY, max_attempts=max_attempts, backoff_base_seconds=0.02)


def test_retries_through_429_and_waits_retry_after(sim: Simulator) -> None:
    sim.set_faults(next_api_errors=[{"status": 429, "retry_after": 1}])
    with _client(sim) as client:
        started = time.monotonic()
        body = client.credits()
        elapsed = time.monotonic() - started
    assert body["current_credits"] > 0
    assert elapsed >= 1.0
    assert [r["status"] for r in sim.requests("/api/v1/credits")] == [429, 200]


def test_retries_through_5xx_with_backoff(sim: Simulator) -> None:
    sim.set_faults(next_api_errors=[{"status": 503}, {"status": 500}, {"status": 502}])
    with _client(sim) as client:
        assert client.models()["data"]
    assert [r["status"] for r in sim.requests("/api/v1/models")] == [503, 500, 502, 200]


def test_gives_up_after_the_bound_with_a_retryable_error(sim: Simulator) -> None:
    sim.set_faults(next_api_errors=[{"status": 503, "code": "public_api_disabled"}] * 5)
    with _client(sim, max_attempts=3) as client, pytest.raises(RivyaUnavailable) as info:
        client.credits()
    assert info.value.retryable is True
    assert info.value.code == "public_api_disabled"
    assert info.value.request_id
    assert len(sim.requests("/api/v1/credits")) == 3


def test_rate_limit_after_the_bound_carries_retry_after(sim: Simulator) -> None:
    sim.set_faults(next_api_errors=[{"status": 429, "retry_after": 0}] * 2)
    with _client(sim, max_attempts=2) as client, pytest.raises(RivyaRateLimited) as info:
        client.get_generation("task_x")
    assert info.value.retryable
    assert info.value.retry_after == 0


def test_4xx_is_not_retried(sim: Simulator) -> None:
    with _client(sim) as client, pytest.raises(RivyaNotFound) as info:
        client.get_generation("task_missing")
    assert not info.value.retryable
    assert len(sim.requests("/api/v1/generations/")) == 1


def test_unknown_4xx_code_is_permanent_and_unknown_5xx_code_retryable(sim: Simulator) -> None:
    sim.set_faults(next_api_errors=[{"status": 418, "code": "brand_new_code"}])
    with _client(sim) as client:
        with pytest.raises(RivyaError) as info:
            client.credits()
        assert info.value.code == "brand_new_code"
        assert not info.value.retryable
        sim.set_faults(next_api_errors=[{"status": 507, "code": "another_new_code"}])
        assert client.credits()["current_credits"] > 0


def test_non_json_error_body_is_typed(sim: Simulator) -> None:
    sim.set_faults(next_api_errors=[{"status": 502, "body": "<html>Bad gateway</html>"}] * 2)
    with _client(sim, max_attempts=2) as client, pytest.raises(RivyaUnavailable) as info:
        client.credits()
    assert info.value.status == 502
    assert info.value.code == "http_502"


def test_create_generation_is_retried_safely_by_idempotency_key(sim: Simulator) -> None:
    sim.set_faults(next_api_errors=[{"status": 503}])
    with _client(sim) as client:
        created = client.create_generation("rivya-image-1", prompt="p")
    posts = [r for r in sim.requests("/api/v1/generations") if r["method"] == "POST"]
    assert [r["status"] for r in posts] == [503, 200]
    assert (
        sim.summary()["generations"]["queued"]
        + sim.summary()["generations"]["processing"]
        + sim.summary()["generations"]["succeeded"]
        == 1
    )
    assert created["id"]


def test_non_idempotent_post_is_not_retried(sim: Simulator) -> None:
    sim.set_faults(next_api_errors=[{"status": 503}])
    with _client(sim) as client, pytest.raises(RivyaUnavailable):
        client.create_webhook("x", "https://example.com/h", ["generation.succeeded"])
    assert len(sim.requests("/api/v1/webhooks")) == 1


def test_network_error_is_typed_and_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now: connection refused on every attempt.
    client = RivyaClient(f"http://127.0.0.1:{port}", KEY, max_attempts=2, backoff_base_seconds=0)
    with client, pytest.raises(RivyaNetworkError) as info:
        client.credits()
    assert info.value.status is None
    assert info.value.retryable


def test_hostile_retry_after_is_capped(sim: Simulator) -> None:
    sim.set_faults(next_api_errors=[{"status": 429, "retry_after": 86400}])
    client = RivyaClient(sim.url, KEY, max_attempts=2, max_wait_seconds=0.2)
    with client:
        started = time.monotonic()
        client.credits()
    assert time.monotonic() - started < 2
