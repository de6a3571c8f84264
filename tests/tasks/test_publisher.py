"""The relay's messages are the messages Celery's own send_task makes.

The relay builds them with Celery's message factory and publishes them with kombu's
producer directly (tasks/publisher.py), skipping send_task's per-message work. This checks,
on the real Redis, that what lands in the queue has exactly the headers and properties
send_task would have written, so an upgrade of Celery or kombu that changes them fails here
rather than in a worker.
"""

from __future__ import annotations

import json
from typing import Any

import redis
from celery import Celery

from rivyahooks_foundation.settings import Settings
from tasks import names
from tasks.broker import celery_config
from tasks.publisher import Publisher

# Per-message values: ids, and who sent it.
VARYING_HEADERS = {"id", "root_id", "origin"}
# reply_to names the sending app's result queue; events.process keeps no result, and the
# relay sends none.
VARYING_PROPERTIES = {"correlation_id", "delivery_tag", "reply_to"}


def queued(url: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(url)
    try:
        return [json.loads(raw) for raw in reversed(client.lrange("celery", 0, -1))]
    finally:
        client.close()


def shape(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "headers": {k: v for k, v in message["headers"].items() if k not in VARYING_HEADERS},
        "properties": {
            k: v for k, v in message["properties"].items() if k not in VARYING_PROPERTIES
        },
        "body": message["body"],
        "content": (message["content-type"], message["content-encoding"]),
    }


def test_relay_messages_are_what_send_task_sends(redis_url: str) -> None:
    settings = Settings(broker_url=redis_url)
    celery = Celery("reference", set_as_current=False)
    celery.config_from_object(celery_config(settings))
    celery.send_task(names.PROCESS_EVENT, args=("evt_1",), retry=False)
    celery.close()
    publisher = Publisher(settings)
    publisher.publish([("evt_1", None), ("evt_2", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f0")])
    publisher.close()

    reference, first, second = queued(redis_url)
    assert shape(first) == shape(reference)
    assert (
        first["headers"]["id"]
        == first["headers"]["root_id"]
        == first["properties"]["correlation_id"]
    )
    assert first["headers"]["origin"].startswith("relay-")
    # The second differs only by its argument and the trace it carries.
    assert shape(second)["headers"] == {
        **shape(reference)["headers"],
        "argsrepr": "('evt_2',)",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f0",
    }
    assert len({m["headers"]["id"] for m in (reference, first, second)}) == 3
