"""Every client method against a live simulator; every response of a contract shape validated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from rivyahooks_protocol import contract
from rivyahooks_protocol.client import RivyaClient
from rivyahooks_protocol.errors import (
    RivyaAuthError,
    RivyaIdempotencyConflict,
    RivyaNotFound,
    RivyaValidationError,
)
from rivyahooks_simulator import Simulator
from tests.support.eventually import eventually
from tests.support.simulated_rivya import API_KEY, Receiver, validate


def _wait_terminal(rivya: RivyaClient, task_id: str) -> dict[str, object]:
    def terminal() -> dict[str, object] | None:
        generation = rivya.get_generation(task_id)
        validate("generation", generation)
        if generation["status"] in contract.TERMINAL_GENERATION_STATUSES:
            return generation
        return None

    return eventually(terminal, 5, interval=0.02, what=f"{task_id} to finish")


def test_generation_lifecycle_and_credits(rivya: RivyaClient) -> None:
    before = rivya.credits()["current_credits"]
    created = rivya.create_generation("rivya-image-1", prompt="a cat", params={"n": 1})
    validate("generation", created)
    assert created["status"] == "queued"
    assert rivya.credits()["current_credits"] == before - created["reserved_credits"]
    done = _wait_terminal(rivya, created["id"])
    assert done["status"] == "succeeded"
    assert done["final_credits"] == created["reserved_credits"]
    assert done["result"]["primary_url"] == done["result"]["urls"][0]  # type: ignore[index]
    assert done["created_at"] < done["updated_at"]  # type: ignore[operator]


def test_failed_generation_is_refunded(sim: Simulator, rivya: RivyaClient) -> None:
    before = rivya.credits()["current_credits"]
    (task_id,) = sim.scenario(1, outcome="failed")
    failed = _wait_terminal(rivya, task_id)
    assert failed["status"] == "failed"
    assert failed["final_credits"] == 0
    assert failed["result"] is None
    assert rivya.credits()["current_credits"] == before


def test_idempotency_same_body_same_generation_different_body_conflict(
    rivya: RivyaClient,
) -> None:
    first = rivya.create_generation("rivya-image-1", prompt="x", idempotency_key="job-1")
    again = rivya.create_generation("rivya-image-1", prompt="x", idempotency_key="job-1")
    assert again["id"] == first["id"]
    with pytest.raises(RivyaIdempotencyConflict) as info:
        rivya.create_generation("rivya-image-1", prompt="y", idempotency_key="job-1")
    assert info.value.status == 409
    assert not info.value.retryable


def test_validation_and_not_found_errors(sim: Simulator, rivya: RivyaClient) -> None:
    with pytest.raises(RivyaValidationError) as info:
        rivya.create_generation("no-such-model")
    assert info.value.code == contract.ERROR_VALIDATION_FAILED
    with pytest.raises(RivyaNotFound):
        rivya.get_generation("task_unknown")
    raw = httpx.get(f"{sim.url}/api/v1/generations/task_unknown", headers=_auth())
    validate("error", raw.json())


def _auth(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "api_key_missing"),
        (_auth("rvya_sk_wrong"), 401, "api_key_invalid"),
        (_auth("rvya_sk_revoked"), 401, "api_key_revoked"),
        (_auth("rvya_sk_expired"), 401, "api_key_expired"),
        (_auth("rvya_sk_narrow"), 403, "api_scope_denied"),
    ],
)
def test_auth_error_codes(sim: Simulator, headers: dict[str, str], status: int, code: str) -> None:
    sim.add_api_key("rvya_sk_revoked", status="revoked")
    sim.add_api_key("rvya_sk_expired", status="expired")
    sim.add_api_key("rvya_sk_narrow", scopes=["models:read"])
    response = httpx.get(f"{sim.url}/api/v1/credits", headers=headers)
    assert response.status_code == status
    validate("error", response.json())
    assert response.json()["error"]["code"] == code


def test_auth_error_is_typed(sim: Simulator) -> None:
    sim.add_api_key("rvya_sk_narrow", scopes=["models:read"])
    with RivyaClient(sim.url, "rvya_sk_narrow") as narrow:
        assert narrow.models()["data"]
        with pytest.raises(RivyaAuthError) as info:
            narrow.credits()
    assert info.value.code == contract.ERROR_SCOPE_DENIED
    assert not info.value.retryable


def test_models_need_no_key(sim: Simulator) -> None:
    with RivyaClient(sim.url, "") as anonymous:
        models = anonymous.models()
    assert models["object"] == "list"
    for model in models["data"]:
        assert {"id", "display_name", "category", "base_credits", "api_status"} <= set(model)
        assert model["api_status"] in contract.MODEL_API_STATUSES


def test_credits_with_date_gives_server_date(rivya: RivyaClient) -> None:
    body, date = rivya.credits_with_date()
    assert isinstance(body["current_credits"], int)
    assert date is not None
    assert abs((datetime.now(UTC) - date).total_seconds()) < 5


def test_files_upload_get_and_size_limit(rivya: RivyaClient) -> None:
    uploaded = rivya.upload_file(b"\x89PNG fake", "image", model="rivya-image-1")
    assert uploaded["id"].startswith("file_")
    assert uploaded["url"]
    assert rivya.get_file(uploaded["id"])["bytes"] == len(b"\x89PNG fake")
    with pytest.raises(RivyaValidationError):
        rivya.upload_file(b"\0" * (contract.FILE_SIZE_LIMITS["audio"] + 1), "audio")
    with pytest.raises(RivyaNotFound):
        rivya.get_file("file_missing")


def test_webhook_endpoint_management(rivya: RivyaClient) -> None:
    created = rivya.create_webhook(
        "main", "https://hooks.example.com/rivya", [contract.EVENT_GENERATION_SUCCEEDED]
    )
    validate("webhook_endpoint", created)
    assert created["signing_secret"].startswith("whsec_")
    assert created["status"] == "active"
    endpoint_id = created["id"]

    fetched = rivya.get_webhook(endpoint_id)
    validate("webhook_endpoint", fetched)
    assert "signing_secret" not in fetched
    listed = rivya.list_webhooks()
    assert [e["id"] for e in listed["data"]] == [endpoint_id]
    for endpoint in listed["data"]:
        validate("webhook_endpoint", endpoint)

    rotated = rivya.rotate_webhook_secret(endpoint_id)
    validate("webhook_endpoint", rotated)
    assert rotated["signing_secret"] != created["signing_secret"]

    updated = rivya.update_webhook(endpoint_id, status="disabled")
    assert updated["status"] == "disabled"
    assert updated["disabled_at"] is not None
    revoked = rivya.delete_webhook(endpoint_id)
    assert revoked["revoked_at"] is not None
    with pytest.raises(RivyaValidationError):
        rivya.create_webhook("bad", "ftp://example.com", [contract.EVENT_GENERATION_FAILED])
    with pytest.raises(RivyaNotFound):
        rivya.get_webhook("whend_missing")


def test_event_log_pages_filters_and_schema(sim: Simulator, rivya: RivyaClient) -> None:
    sim.seed_events(45, older_than_seconds=60, spacing_ms=1000)
    pager = rivya.iter_webhook_events(limit=20)
    events = list(pager)
    assert len(events) == 45
    assert pager.pages == 3
    assert pager.stopped_on == "has_more"
    times = [e["created_at"] for e in events]
    assert times == sorted(times, reverse=True)
    for event in events:
        validate("event", event)
    raw = httpx.get(f"{sim.url}/api/v1/webhook-events", headers=_auth(), params={"limit": 5})
    validate("event_list", raw.json())

    cutoff = datetime.now(UTC) - timedelta(seconds=70)
    recent = list(rivya.iter_webhook_events(created_after=cutoff))
    assert 0 < len(recent) < 45
    assert all(e["created_at"] > cutoff.isoformat() for e in recent)
    failed = list(rivya.iter_webhook_events(type=contract.EVENT_GENERATION_FAILED))
    assert all(e["type"] == contract.EVENT_GENERATION_FAILED for e in failed)


def test_event_log_keeps_thirty_days(sim: Simulator, rivya: RivyaClient) -> None:
    sim.seed_events(3, older_than_seconds=31 * 86_400)
    sim.seed_events(2, older_than_seconds=10)
    assert len(list(rivya.iter_webhook_events())) == 2


def test_send_test_event_and_list_deliveries(rivya: RivyaClient, receiver: Receiver) -> None:
    endpoint = rivya.create_webhook("t", receiver.url, sorted(contract.EVENT_TYPES))
    sent = rivya.send_test_event(endpoint["id"])
    validate("event", sent)
    (delivery,) = receiver.wait_for(1)
    assert delivery.headers["Webhook-Id"] == sent["id"]
    with pytest.raises(RivyaNotFound):
        rivya.get_generation(sent["data"]["id"])
    attempts = eventually(
        lambda: rivya.list_deliveries(endpoint["id"])["data"], 5, what="a recorded delivery"
    )
    assert attempts[0]["event_id"] == sent["id"]
    assert attempts[0]["status_code"] == 204
    assert attempts[0]["succeeded"] is True
