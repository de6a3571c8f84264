"""Notice that the broker lost its messages, and put what it held back in the outbox.

A Redis restarted without persistence (or flushed) forgets every queued message, and the
events behind them stay `enqueued` until the sweeper's visibility window (an hour) ends.
The relay keeps a sentinel key in the broker's Redis database: a restart that kept its data
keeps the key, one that lost it does not. Finding it gone, the relay moves every event
enqueued before that moment back to `received` (compare-and-set, as the sweeper does), so
it publishes them again, then sets the key anew. A message that did survive is then
delivered twice: the second claim is refused, so that costs a little work, never a second
processing. Redis brokers only: the embedded SQLite broker keeps its messages in a file.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from models.base import utcnow
from models.events import EventStatus, WebhookEvent, move
from models.outbound import take_back_lost
from rivyahooks_foundation.metrics.relay import BROKER_LOSSES

log = logging.getLogger(__name__)

SENTINEL_KEY = "rivyahooks:relay:broker-sentinel"
# How often the relay looks: one GET, cheap; the loss is noticed within this.
CHECK_EVERY_SECONDS = 2.0


class BrokerWatch:
    """The sentinel of one Redis broker, checked by the relay between batches."""

    def __init__(self, broker_url: str) -> None:
        self._client: Any = redis.Redis.from_url(broker_url, socket_timeout=5)
        self._checked_at = -CHECK_EVERY_SECONDS
        self.checks = 0

    def check(self, engine: Engine) -> int:
        """Republish what the broker lost if its sentinel is gone; return how many events."""
        now = time.monotonic()
        if now - self._checked_at < CHECK_EVERY_SECONDS:
            return 0
        self._checked_at = now
        try:
            present = self._client.exists(SENTINEL_KEY)
        except redis.RedisError as exc:
            # The broker is down: publishing fails and the relay says so; look again later.
            log.debug("relay: broker sentinel unreadable: %s", exc)
            return 0
        self.checks += 1
        if present:
            return 0
        # Everything enqueued until now may have been in the lost broker. At the very first
        # start the key is missing too: then it moves only what a lost broker would have held.
        lost_before = utcnow()
        with engine.begin() as connection:
            moved = int(
                connection.execute(
                    move(
                        EventStatus.RECEIVED,
                        WebhookEvent.status == EventStatus.ENQUEUED,
                        WebhookEvent.enqueued_at <= lost_before,
                        next_attempt_at=lost_before,
                        status_reason="the broker lost its messages; publishing again",
                        updated_at=lost_before,
                    )
                ).rowcount
            )
            # Outbound deliveries the lost broker held: pending again, due now.
            moved += take_back_lost(Session(bind=connection), lost_before, lost_before)
        # Set only once the events are back in the outbox: a crash in between finds the key
        # still missing and moves them next time.
        self._client.set(SENTINEL_KEY, lost_before.isoformat())
        if moved:
            BROKER_LOSSES.inc()
            log.warning(
                "relay: the broker lost its messages (its sentinel key is gone: restarted "
                "without persistence, or flushed); %d enqueued event(s) published again",
                moved,
            )
        return moved

    def close(self) -> None:
        self._client.close()


def watch_for(broker_url: str) -> BrokerWatch | None:
    """Return the watch of a Redis broker, None for a broker that cannot lose its state so."""
    return BrokerWatch(broker_url) if broker_url.startswith(("redis://", "rediss://")) else None
