"""The relay's broker side: `events.process` messages published by task name only.

A send-only Celery client: it never loads the worker's code or its app. Only the relay
publishes (see tasks/relay.py); everything else writes rows.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence

from celery import Celery
from kombu.entity import Queue
from kombu.utils.uuid import uuid

from rivyahooks_foundation.settings import Settings
from tasks import names
from tasks.broker import celery_config


class BrokerUnavailable(Exception):
    """The broker refused or did not take a batch; its rows stay due in the database."""


class Publisher:
    def __init__(self, settings: Settings) -> None:
        self._celery = Celery("rivyahooks-relay", set_as_current=False)
        self._celery.config_from_object(celery_config(settings))
        # Who sent the message, in Celery's own form; computed once, not per message.
        self._origin = f"relay-{os.getpid()}@{socket.gethostname()}"
        self._declared: set[str] = set()
        self._outbound = Queue(names.OUTBOUND_QUEUE)  # type: ignore[no-untyped-call]

    def publish(self, events: Sequence[tuple[str, str | None]]) -> None:
        """Publish one `events.process` message per (event id, traceparent); raise if refused.

        Each message is what `send_task` sends (Celery's own `create_task_message`, so the
        message protocol stays Celery's), published with kombu's public `Producer.publish`
        to the default queue, the way send_task routes a direct exchange. Skipping
        send_task's per-message work (routing, the publish signals, `repr` of the arguments
        and the node name, both given here) and buffering in kombu's producer batch (one
        round trip per batch on Redis) cut the relay's CPU per event to under half: it shares
        the cores with the receiver. retry=False: a broker outage surfaces at once, and the
        relay (which knows the rows are safe in the database) decides when to try again.
        The traceparent the receiver stored goes in the headers, so the worker's spans
        continue the delivery's trace.
        """
        queue = self._celery.amqp.default_queue
        self._publish(names.PROCESS_EVENT, queue, [((e,), t) for e, t in events])

    def publish_deliveries(self, delivery_ids: Sequence[int]) -> None:
        """Publish one `outbound.deliver` message per delivery id to the outbound queue."""
        self._publish(names.DELIVER_OUTBOUND, self._outbound, [((i,), None) for i in delivery_ids])

    def _publish(
        self, task: str, queue: Queue, messages: Sequence[tuple[tuple[object, ...], str | None]]
    ) -> None:
        amqp = self._celery.amqp
        with (
            self._celery.producer_or_acquire() as producer,
            producer.batch(max_size=max(1, len(messages))),
        ):
            for args, traceparent in messages:
                task_id = uuid()
                headers, properties, body, _ = amqp.create_task_message(
                    task_id,
                    task,
                    args,
                    {},
                    argsrepr=repr(args),
                    kwargsrepr="{}",
                    origin=self._origin,
                    ignore_result=None,  # as send_task: the task's own setting decides
                )
                if traceparent:
                    headers["traceparent"] = traceparent
                producer.publish(
                    body,
                    exchange="",
                    routing_key=queue.name,
                    serializer="json",
                    delivery_mode=queue.exchange.delivery_mode or 2,
                    # A queue is declared with its first message only: declaring it on every
                    # one (as send_task does) cost 40% of the relay's CPU per event.
                    # Messages go to the default exchange, straight to the queue, so they
                    # need no binding to be delivered.
                    declare=None if queue.name in self._declared else [queue],
                    headers=headers,
                    retry=False,
                    **properties,
                )
                self._declared.add(queue.name)

    def close(self) -> None:
        self._celery.close()
