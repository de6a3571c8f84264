"""Simulator deliveries verified by independent oracles, with retries and faults."""

from __future__ import annotations

import json

from standardwebhooks.webhooks import Webhook

from rivyahooks_protocol import contract
from rivyahooks_protocol.client import RivyaClient
from rivyahooks_protocol.signatures import Verifier
from rivyahooks_simulator import Simulator
from rivyahooks_simulator.config import SimConfig
from rivyahooks_simulator.delivery import retry_delay
from tests.support.eventually import eventually
from tests.support.simulated_rivya import API_KEY, Receiver, validate


def test_standard_delivery_verifies_with_standardwebhooks(
    sim: Simulator, receiver: Receiver
) -> None:
    endpoint = sim.register_endpoint(receiver.url, scheme=contract.SCHEME_STANDARD)
    (task_id,) = sim.scenario(1, outcome="succeeded")
    (delivery,) = receiver.wait_for(1)
    payload = Webhook(endpoint["signing_secret"]).verify(delivery.body, delivery.headers)
    validate("event", payload)
    assert payload["type"] == contract.EVENT_GENERATION_SUCCEEDED
    assert payload["data"]["id"] == task_id
    assert delivery.headers["Content-Type"] == "application/json"
    assert "Authorization" not in delivery.headers


def test_timestamped_delivery_verifies_with_our_verifier(
    sim: Simulator, receiver: Receiver
) -> None:
    endpoint = sim.register_endpoint(receiver.url, scheme=contract.SCHEME_TIMESTAMPED_HMAC)
    sim.scenario(1, outcome="failed")
    (delivery,) = receiver.wait_for(1)
    verifier = Verifier(contract.SCHEME_TIMESTAMPED_HMAC, [endpoint["signing_secret"]], 300)
    verifier.verify(delivery.headers, delivery.body)
    assert json.loads(delivery.body)["type"] == contract.EVENT_GENERATION_FAILED


def test_rotation_signs_with_the_new_secret(sim: Simulator, receiver: Receiver) -> None:
    endpoint = sim.register_endpoint(receiver.url)
    with RivyaClient(sim.url, API_KEY) as client:
        new_secret = client.rotate_webhook_secret(endpoint["id"])["signing_secret"]
    sim.scenario(1)
    (delivery,) = receiver.wait_for(1)
    Webhook(new_secret).verify(delivery.body, delivery.headers)
    both = Verifier(contract.SCHEME_STANDARD, [endpoint["signing_secret"], new_secret], 300)
    assert both.verify(delivery.headers, delivery.body).secret_index == 1


def test_failed_attempts_are_retried_and_recorded(sim: Simulator, receiver: Receiver) -> None:
    receiver.statuses = [500, 308]  # a redirect is a failure too: never followed
    endpoint = sim.register_endpoint(receiver.url)
    sim.scenario(1)
    deliveries = receiver.wait_for(3)
    assert len({d.headers["Webhook-Id"] for d in deliveries}) == 1
    sim.wait_deliveries_idle()
    attempts = sim.state.deliveries[endpoint["id"]]
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 500), (2, 308), (3, 204)]
    event = sim.state.events.items[-1]
    assert event.delivery_status == "delivered"
    with sim.state.lock:
        stored = sim.state.endpoint_json(sim.state.endpoints[endpoint["id"]])
    assert stored["failure_count"] == 2
    assert stored["last_success_at"] is not None


def test_unreachable_endpoint_ends_failed(sim: Simulator) -> None:
    sim.register_endpoint("http://127.0.0.1:9/unreachable")
    sim.scenario(1)
    eventually(
        lambda: sim.state.events.items and sim.state.events.items[-1].delivery_status == "failed",
        5,
        what="the delivery to fail for good",
    )
    assert sim.summary()["deliveries"]["attempted"] == sim.config.delivery_max_attempts


def test_drop_and_duplicate_faults(sim: Simulator, receiver: Receiver) -> None:
    sim.register_endpoint(receiver.url)
    sim.set_faults(drop_ratio=1.0)
    sim.scenario(2)
    eventually(lambda: sim.summary()["deliveries"]["dropped"] == 2, 5, what="two drops")
    assert [e.delivery_status for e in sim.state.events.items] == ["failed", "failed"]
    sim.set_faults(drop_ratio=0.0, duplicate_ratio=1.0)
    sim.scenario(1)
    first, second = receiver.wait_for(2)
    assert first.headers["Webhook-Id"] == second.headers["Webhook-Id"]
    assert sim.summary()["deliveries"]["duplicated"] == 1


def test_delay_and_reorder_faults_still_deliver_everything(
    sim: Simulator, receiver: Receiver
) -> None:
    sim.register_endpoint(receiver.url)
    sim.set_faults(delay_max=0.2, reorder_ratio=0.5)
    ids = sim.scenario(6)
    deliveries = receiver.wait_for(6)
    assert {json.loads(d.body)["data"]["id"] for d in deliveries} == set(ids)


def test_event_types_filter_and_disabled_endpoints(sim: Simulator, receiver: Receiver) -> None:
    sim.register_endpoint(receiver.url, event_types=[contract.EVENT_GENERATION_FAILED])
    sim.scenario(1, outcome="succeeded")
    sim.scenario(1, outcome="failed")
    (delivery,) = receiver.wait_for(1)
    # Nothing else is on its way: the filtered-out event was never scheduled.
    sim.wait_deliveries_idle()
    assert len(receiver.captured) == 1
    assert json.loads(delivery.body)["type"] == contract.EVENT_GENERATION_FAILED


def test_retries_double_until_the_cap() -> None:
    config = SimConfig(delivery_backoff_seconds=0.5, delivery_backoff_max_seconds=30.0)
    delays = [retry_delay(config, attempt) for attempt in range(1, 10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
