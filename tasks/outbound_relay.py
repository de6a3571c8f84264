"""The relay's outbound half: fan the feed out into messages, publish due deliveries.

Run by the relay in its loop after the inbound events (tasks/relay.py), under the same
outage handling: a database or broker error propagates to it. A delivery's `enqueued` mark
commits only once the broker took its message, as an event's does; at most
OUTBOUND_MAX_IN_FLIGHT per app are enqueued or sending at once.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Engine, exists, select
from sqlalchemy.orm import Session

from models.apps import App
from models.clock import database_now
from models.outbound import due_deliveries, mark_enqueued
from rivyahooks_foundation.settings import Settings
from tasks.outbound_fanout import fan_out
from tasks.publisher import BrokerUnavailable, Publisher

log = logging.getLogger(__name__)

BATCH = 200
# Unless a final state's NOTIFY wakes the relay, the feed is read at most this often: an idle
# relay adds one indexed query per interval.
FAN_OUT_EVERY_SECONDS = 0.25
# Woken by a final state's NOTIFY, the relay fans out at once unless it did less than this
# ago: a fan-out costs about ten statements (some 10 ms of CPU) however many results it
# carries, so results coming faster than this are taken together.
FAN_OUT_WOKEN_SECONDS = 0.1
# Due deliveries are looked for at most this often, unless the last batch was full.
STEP_EVERY_SECONDS = 0.1
# Whether any app exists is read again this often; without one the outbound half is idle.
APPS_CHECK_SECONDS = 10.0


class OutboundRelay:
    def __init__(self, settings: Settings, publisher: Publisher) -> None:
        self.settings = settings
        self.publisher = publisher
        self.published = 0
        self.made = 0
        self._fanned_at = 0.0
        self._stepped_at = 0.0
        self._behind = False
        self._apps_checked_at = -APPS_CHECK_SECONDS
        self._any_app = False
        self._woken = False

    def wake(self) -> None:
        """Fan out soon (within FAN_OUT_WOKEN_SECONDS of the last): a final state changed."""
        self._woken = True

    @property
    def woken(self) -> bool:
        """Return whether a wake waits for its fan-out (the relay should look again soon)."""
        return self._woken

    def step(self, engine: Engine) -> int:
        """Fan out and publish once; return how many deliveries were published."""
        now = time.monotonic()
        every = FAN_OUT_WOKEN_SECONDS if self._woken else FAN_OUT_EVERY_SECONDS
        fan_due = now - self._fanned_at >= every
        # The relay loops every few milliseconds while events flow: looking for due
        # deliveries on each turn would cost the inbound side's CPU for nothing.
        if now - self._stepped_at < STEP_EVERY_SECONDS and not (
            self._behind or (self._woken and fan_due)
        ):
            return 0
        self._stepped_at = now
        if not self._apps_exist(engine):
            self._woken = False
            return 0
        if fan_due:
            with Session(engine) as session, session.begin():
                self.made += fan_out(session, self.settings.public_base_url)
            self._fanned_at = now
            self._woken = False
        published = self.publish_due(engine)
        self._behind = published == BATCH
        return published

    def publish_due(self, engine: Engine) -> int:
        with Session(engine) as session, session.begin():
            now = database_now(session)
            due = due_deliveries(session, now, self.settings.outbound_max_in_flight, BATCH)
            if not due:
                return 0
            # Marked before they are published, in the same transaction: the marked rows
            # stay locked until it commits, so a worker handed a message at once waits for
            # that (see the claim in tasks/outbound_delivery.py) instead of racing the mark.
            # A broker that refuses the batch rolls the marks back. Only the rows this call
            # moved are published: another relay may have taken the others meanwhile.
            ids = mark_enqueued(session, [pk for pk, _ in due], now)
            if not ids:
                return 0
            try:
                self.publisher.publish_deliveries(ids)
            except Exception as exc:  # kombu and redis raise many types for a dead broker
                raise BrokerUnavailable(str(exc)) from exc
        self.published += len(ids)
        log.debug("relay: published %d outbound deliveries", len(ids))
        return len(ids)

    def _apps_exist(self, engine: Engine) -> bool:
        """Return whether any app is registered (read at most every APPS_CHECK_SECONDS)."""
        if time.monotonic() - self._apps_checked_at >= APPS_CHECK_SECONDS:
            with engine.connect() as connection:
                self._any_app = bool(connection.scalar(select(exists().where(App.id.is_not(None)))))
            self._apps_checked_at = time.monotonic()
        return self._any_app
