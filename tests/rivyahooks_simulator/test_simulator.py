"""Simulator behaviour not covered through the client: content, timing, admin routes, CLI."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from rivyahooks_protocol import contract
from rivyahooks_simulator import SimConfig, Simulator, iter_result_bytes, result_bytes_sha256
from rivyahooks_simulator.cli import simulate
from tests.support.eventually import eventually

KEY = "rvya_sk_sim_unit"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimConfig(queued_seconds=0.1, processing_seconds=0.1, failure_ratio=0)
    with Simulator(api_keys={KEY: None}, config=config, seed=5) as simulator:
        yield simulator


def test_result_bytes_are_deterministic_and_sized() -> None:
    size = 200_001
    first = b"".join(iter_result_bytes("task_a", 0, size))
    assert len(first) == size
    assert first == b"".join(iter_result_bytes("task_a", 0, size))
    assert first != b"".join(iter_result_bytes("task_a", 1, size))
    assert hashlib.sha256(first).hexdigest() == result_bytes_sha256("task_a", 0, size)
    assert b"".join(iter_result_bytes("task_a", 0, 0)) == b""


def test_result_bytes_are_fast_enough_to_serve() -> None:
    started = time.monotonic()
    total = sum(len(block) for block in iter_result_bytes("task_speed", 0, 256 * 1024**2))
    assert total / (time.monotonic() - started) > 200e6


def test_status_moves_by_time(sim: Simulator) -> None:
    (task_id,) = sim.scenario(1, outcome="succeeded")
    seen = [sim.generation(task_id)["status"]]

    def finished() -> bool:
        status = sim.generation(task_id)["status"]
        if status != seen[-1]:
            seen.append(status)
        return bool(status == "succeeded")

    eventually(finished, 5, interval=0.01, what="the generation to finish")
    # Each state in turn, never back; `processing` lasts 0.1 s, so a poll every 10 ms sees it.
    assert seen == ["queued", "processing", "succeeded"]
    (done,) = sim.wait_terminal([task_id])
    assert done["status"] == "succeeded"
    assert done["updated_at"].endswith("Z")
    assert sim.summary()["events_emitted"] == 1


def test_admin_routes(sim: Simulator) -> None:
    faults = httpx.post(f"{sim.url}/_sim/faults", json={"drop_ratio": 0.5}).json()
    assert faults["drop_ratio"] == 0.5
    bad = httpx.post(f"{sim.url}/_sim/faults", json={"drop_ratio": 2})
    assert bad.status_code == 400
    config = httpx.post(f"{sim.url}/_sim/config", json={"outputs": 3}).json()
    assert config["outputs"] == 3
    ids = httpx.post(f"{sim.url}/_sim/scenario", json={"count": 4, "outcome": "failed"}).json()
    assert len(ids["ids"]) == 4
    seeded = httpx.post(f"{sim.url}/_sim/seed-events", json={"count": 10}).json()
    assert seeded == {"seeded": 10}
    state = httpx.get(f"{sim.url}/_sim/state").json()
    assert sum(state["generations"].values()) == 14  # 4 created, 10 seeded
    # The 4 created ones log an event each once they finish, whenever that is.
    assert state["events_seeded"] == 10
    assert state["events"] == 10 + state["events_emitted"]
    httpx.get(f"{sim.url}/api/v1/models")
    assert len(httpx.get(f"{sim.url}/_sim/requests").json()["data"]) == 1
    httpx.delete(f"{sim.url}/_sim/requests")
    assert httpx.get(f"{sim.url}/_sim/requests").json()["data"] == []
    key = httpx.post(
        f"{sim.url}/_sim/api-keys", json={"key": "rvya_sk_limited", "scopes": ["credits:read"]}
    )
    assert key.status_code == 200
    endpoint = httpx.post(
        f"{sim.url}/_sim/endpoints",
        json={"url": "http://127.0.0.1:9/x", "scheme": contract.SCHEME_TIMESTAMPED_HMAC},
    ).json()
    assert endpoint["scheme"] == contract.SCHEME_TIMESTAMPED_HMAC
    assert endpoint["signing_secret"].startswith("whsec_")


def test_injected_rate_limits_and_errors_by_ratio(sim: Simulator) -> None:
    sim.set_faults(rate_limit_ratio=1.0, retry_after_seconds=2)
    response = httpx.get(f"{sim.url}/api/v1/models")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.json()["error"]["code"] == contract.ERROR_RATE_LIMITED
    sim.set_faults(rate_limit_ratio=0.0, api_error_ratio=1.0)
    assert httpx.get(f"{sim.url}/api/v1/models").status_code in (500, 502, 503)


def test_insufficient_credits(sim: Simulator) -> None:
    sim.state.credits = 1
    response = httpx.post(
        f"{sim.url}/api/v1/generations",
        json={"model": "rivya-video-1"},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert response.status_code == contract.INSUFFICIENT_CREDITS_STATUS
    assert response.json()["error"]["code"] == contract.ERROR_INSUFFICIENT_CREDITS


def test_unknown_api_route_answers_the_envelope(sim: Simulator) -> None:
    response = httpx.get(f"{sim.url}/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == contract.ERROR_NOT_FOUND


def test_cli_help_lists_every_knob() -> None:
    result = CliRunner().invoke(simulate, ["--help"])
    assert result.exit_code == 0
    for option in (
        "--host", "--port", "--api-key", "--deliver-to", "--signing-secret", "--scheme",
        "--queued-seconds", "--processing-seconds", "--failure-ratio", "--outputs",
        "--output-bytes", "--url-ttl", "--drop-ratio", "--duplicate-ratio", "--delay-max",
        "--reorder-ratio", "--api-error-ratio", "--rate-limit-ratio", "--slow-ratio",
        "--slow-seconds", "--cut-download-ratio", "--expire-early-ratio", "--seed",
    ):  # fmt: skip
        assert option in result.output


def test_cli_rejects_unknown_scope() -> None:
    result = CliRunner().invoke(simulate, ["--api-key", "k:nope", "--port", "0"])
    assert result.exit_code != 0
    assert "unknown scopes" in result.output
