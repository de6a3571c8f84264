"""How many messages the broker holds: waiting in the queue plus delivered and unacknowledged.

`events audit` compares it with the events marked `enqueued`: a broker restarted empty holds
fewer messages than events waiting for one.
"""

from __future__ import annotations

import logging

from celery.app.defaults import DEFAULTS

from rivyahooks_foundation.settings import Settings
from tasks.broker import celery_config

log = logging.getLogger(__name__)

# Every task goes to Celery's default queue (no routes are configured).
QUEUE: str = DEFAULTS["task_default_queue"]


def broker_messages(settings: Settings, timeout: float = 3) -> int | None:
    """Return the broker's messages (queued plus unacknowledged); None if it cannot tell."""
    if not settings.broker_url.startswith(("redis://", "rediss://")):
        return None  # only Redis's transport is read; the embedded one serves tests and demos
    from kombu.connection import Connection

    config = celery_config(settings)
    try:
        with Connection(  # type: ignore[no-untyped-call]
            settings.broker_url,
            transport_options=config["broker_transport_options"],
            connect_timeout=timeout,
        ) as connection:
            channel = connection.default_channel
            # _size sums the queue's priority lists, as the worker reads them.
            queued = int(channel._size(QUEUE))
            unacked = int(channel.client.hlen(channel.unacked_key))
    except Exception as exc:  # redis and kombu raise many types for a broker that is away
        log.warning("broker not answering: %s: %s", type(exc).__name__, exc)
        return None
    return queued + unacked
