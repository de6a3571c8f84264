"""The relay's broker side: `events.process` messages published by task name only.

A send-only Celery client: it never loads the worker's code or its app. Only the relay
publishes (see tasks/relay.py); everything else writes rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery

from rivyahooks.broker import celery_config
from rivyahooks.settings import Settings
from tasks import names


class Publisher:
    def __init__(self, settings: Settings) -> None:
        self._celery = Celery("rivyahooks-relay", set_as_current=False)
        self._celery.config_from_object(celery_config(settings))

    def publish(self, event_ids: Sequence[str]) -> None:
        """Publish one message per event over one broker connection; raise if refused.

        retry=False: a broker outage surfaces at once, and the relay (which knows the rows
        are safe in the database) decides when to try again.
        """
        with self._celery.producer_or_acquire() as producer:
            for event_id in event_ids:
                self._celery.send_task(
                    names.PROCESS_EVENT, args=[event_id], producer=producer, retry=False
                )

    def close(self) -> None:
        self._celery.close()
