"""Hand committed events to the broker, by task name only."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from kombu.transport import redis as kombu_redis

from rivyahooks.broker import celery_config
from rivyahooks.settings import Settings
from rivyahooks.tracing import context_headers
from tasks import names

log = logging.getLogger(__name__)


class _ReusingClientChannel(kombu_redis.Channel):
    """A Redis channel that keeps one client instead of building one per publish.

    kombu makes a new redis-py client (and its table of ~170 response callbacks) for every
    message it publishes; in the receiver that was a quarter of the CPU of a delivery. A
    redis-py client is thread-safe over its connection pool, so one per channel suffices.
    """

    _reused_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        if self._reused_client is None:
            self._reused_client = super()._create_client()  # type: ignore[no-untyped-call]
        return self._reused_client


class ReusingClientTransport(kombu_redis.Transport):
    Channel = _ReusingClientChannel


class Enqueuer:
    """A send-only Celery client: the web process never loads the worker's code."""

    def __init__(self, settings: Settings) -> None:
        self._celery = Celery("rivyahooks-web", set_as_current=False)
        config = celery_config(settings)
        if settings.broker_url.startswith("redis://"):
            config["broker_transport"] = f"{__name__}:ReusingClientTransport"
        self._celery.config_from_object(config)

    def process_event(self, event_id: str) -> bool:
        """Enqueue `events.process`; return False (never raise) when the broker is down.

        The event row is already committed: a failed publish only delays it until the
        sweeper re-enqueues it, so the delivery is still acknowledged.
        """
        try:
            # retry=False: the request must answer fast; the sweeper is the retry.
            self._celery.send_task(
                names.PROCESS_EVENT, args=[event_id], retry=False, headers=context_headers()
            )
        except Exception as exc:  # kombu raises many types for a dead broker
            log.warning("enqueue failed event_id=%s error=%s", event_id, type(exc).__name__)
            return False
        return True

    def ping(self, timeout: float = 2) -> None:
        """Raise if the broker cannot be reached within `timeout` seconds."""
        with self._celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)

    def close(self) -> None:
        self._celery.close()
