"""Hand committed events to the broker, by task name only."""

from __future__ import annotations

import logging

from celery import Celery

from rivyahooks.broker import celery_config
from rivyahooks.settings import Settings
from tasks import names

log = logging.getLogger(__name__)


class Enqueuer:
    """A send-only Celery client: the web process never loads the worker's code."""

    def __init__(self, settings: Settings) -> None:
        self._celery = Celery("rivyahooks-web", set_as_current=False)
        self._celery.config_from_object(celery_config(settings))

    def process_event(self, event_id: str) -> bool:
        """Enqueue `events.process`; return False (never raise) when the broker is down.

        The event row is already committed: a failed publish only delays it until the
        sweeper re-enqueues it, so the delivery is still acknowledged.
        """
        try:
            # retry=False: the request must answer fast; the sweeper is the retry.
            self._celery.send_task(names.PROCESS_EVENT, args=[event_id], retry=False)
        except Exception as exc:  # kombu raises many types for a dead broker
            log.warning("enqueue failed event_id=%s error=%s", event_id, type(exc).__name__)
            return False
        return True

    def ping(self) -> None:
        """Raise if the broker cannot be reached within a couple of seconds."""
        with self._celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)

    def close(self) -> None:
        self._celery.close()
