"""The relay's broker side: `events.process` messages published by task name only.

A send-only Celery client: it never loads the worker's code or its app. Only the relay
publishes (see tasks/relay.py); everything else writes rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery
from kombu.utils.uuid import uuid

from rivyahooks.broker import celery_config
from rivyahooks.settings import Settings
from tasks import names


class Publisher:
    def __init__(self, settings: Settings) -> None:
        self._celery = Celery("rivyahooks-relay", set_as_current=False)
        self._celery.config_from_object(celery_config(settings))
        self._route: dict[str, Any] | None = None

    def publish(self, events: Sequence[tuple[str, str | None]]) -> None:
        """Publish one message per (event id, traceparent) over one connection; raise if refused.

        The messages are what `send_task` would send, built with the two public steps it
        takes (create, then send), routed once for the one task name, and buffered by
        kombu's producer batch: on Redis a batch is one round trip. That cut the relay's
        CPU per event to a third. retry=False: a broker outage surfaces at once, and the
        relay (which knows the rows are safe in the database) decides when to try again.
        The traceparent the receiver stored goes in the headers, so the worker's spans
        continue the delivery's trace.
        """
        amqp = self._celery.amqp
        if self._route is None:
            self._route = amqp.router.route({}, names.PROCESS_EVENT, None, None)
        with (
            self._celery.producer_or_acquire() as producer,
            producer.batch(max_size=max(1, len(events))),
        ):
            for event_id, traceparent in events:
                message = amqp.create_task_message(uuid(), names.PROCESS_EVENT, (event_id,), {})
                headers = {"traceparent": traceparent} if traceparent else None
                amqp.send_task_message(
                    producer,
                    names.PROCESS_EVENT,
                    message,
                    retry=False,
                    headers=headers,
                    **self._route,
                )

    def close(self) -> None:
        self._celery.close()
