"""The relay: the one process that publishes events to the broker (`rivya-hooks relay`).

The transactional outbox's other half. Writers (the receiver, the reconciler, the sweeper,
replay) only store rows `received` or `failed` with a due time; the relay publishes due
rows in batches over one broker connection and marks them `enqueued` only after the broker
took them, with a compare-and-set. If it dies in between, the rows are published again
(at least once; processing is idempotent and a second claim is refused).

- Several relays may run: on PostgreSQL each locks its batch with FOR UPDATE SKIP LOCKED.
- On PostgreSQL it sleeps on LISTEN, woken by the NOTIFY in the writers' statements (and by
  a generation's final state changing, which it fans out to apps at once), and
  polls every RELAY_POLL_SECONDS as a fallback and for retries falling due; SQLite has no
  notifications, so it polls at least every 0.25 s there. Behind PgBouncer in transaction
  pooling LISTEN cannot work (the server connection that listens goes back to the pool):
  there it only polls, told by DATABASE_POOLER or RELAY_LISTEN, or because a notification
  it sent itself never came back. Its first lines say which, once. Once it found work it stays
  awake for RELAY_ACTIVE_SECONDS, looking every ACTIVE_POLL_SECONDS: the receiver notifies
  at most every NOTIFY_EVERY_SECONDS per process (see models/inbox.py), so the deliveries
  in between are found by this short poll.
- With a Redis broker it notices within seconds when Redis lost its messages (restarted
  without persistence) and publishes what was enqueued before again (tasks/broker_loss.py).
- When the broker or the database is unavailable it stops publishing, says so once, backs
  off, and resumes by itself. SIGTERM stops it after the batch in hand.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from models.base import utcnow
from models.clock import database_now
from models.db import make_engine
from models.events import DUE_PREDICATE, WebhookEvent
from models.inbox import NOTIFY_EVERY_SECONDS, RELAY_CHANNEL, due_events, mark_enqueued
from models.outbound_wake import OUTBOUND_WAKE
from rivyahooks_foundation.faultpoints import reach
from rivyahooks_foundation.metrics.relay import RELAY_LAG, RELAY_PUBLISHED
from rivyahooks_foundation.settings import Settings
from tasks.broker_loss import watch_for
from tasks.outbound_relay import OutboundRelay
from tasks.publisher import BrokerUnavailable, Publisher

log = logging.getLogger(__name__)

BATCH = 500
SQLITE_POLL_SECONDS = 0.25
# Long enough to gather a batch worth a round trip (each costs about 1.5 ms of CPU).
ACTIVE_POLL_SECONDS = 0.05
# Awake this long after the last batch: well past the receiver's notification interval.
RELAY_ACTIVE_SECONDS = 5 * NOTIFY_EVERY_SECONDS
# Backoff while the broker or the database is down: first wait, doubling up to the cap.
OUTAGE_FIRST_WAIT = 0.5
OUTAGE_MAX_WAIT = 5.0
# A progress line at most this often, when something was published.
PROGRESS_EVERY_SECONDS = 10.0
# Longest single wait, so that a stop request is noticed soon.
WAIT_SLICE_SECONDS = 0.25


# How long a notification the relay sent itself may take to come back before it concludes
# that LISTEN does not work through DATABASE_URL. Milliseconds on a direct connection.
LISTEN_CHECK_SECONDS = 3.0


class ListenUnsupported(Exception):
    """LISTEN was accepted but no notification arrives (a pooler in transaction mode)."""


class Listener:
    """A PostgreSQL connection that LISTENs on the relay's channel.

    With `check`, the first connection proves that notifications arrive by sending one
    through another connection of the engine, and raises ListenUnsupported if it never comes.
    """

    def __init__(self, engine: Engine, *, check: bool = True) -> None:
        self._engine = engine
        self._connection: Any = None
        self._unchecked = check

    def wait(self, timeout: float) -> set[str]:
        """Wait up to `timeout` seconds for a notification; return the payloads that came."""
        connection = self._connect()
        payloads = {n.payload for n in connection.notifies(timeout=timeout, stop_after=1)}
        if payloads:
            # Notifications of rows this batch will pick up anyway: one of each kind will do.
            payloads.update(n.payload for n in connection.notifies(timeout=0))
        return payloads

    @property
    def listening(self) -> bool:
        return self._connection is not None

    def _connect(self) -> Any:
        if self._connection is None:
            raw = self._engine.raw_connection()
            connection = raw.driver_connection
            assert connection is not None
            # Out of the pool for good: it spends its life waiting for notifications.
            raw.detach()
            connection.autocommit = True
            connection.execute(f"LISTEN {RELAY_CHANNEL}")
            self._connection = connection
            if self._unchecked:
                self._check(connection)
            log.debug("relay: listening for notifications on %s", RELAY_CHANNEL)
        return self._connection

    def _check(self, connection: Any) -> None:
        with self._engine.begin() as sender:
            sender.execute(select(func.pg_notify(RELAY_CHANNEL, "relay: checking LISTEN")))
        # Any notification will do, a writer's as well: it proves they reach this connection.
        if not any(True for _ in connection.notifies(timeout=LISTEN_CHECK_SECONDS, stop_after=1)):
            self.close()
            raise ListenUnsupported
        self._unchecked = False

    def start(self) -> None:
        """Connect and LISTEN now (raising ListenUnsupported) rather than at the first wait."""
        self._connect()

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None


class Relay:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(
            settings.database_url,
            transaction_pooling=settings.transaction_pooling,
            # Outbound messages are sealed when they are made, here.
            data_keys=settings.data_encryption_keys,
        )
        self.publisher = Publisher(settings)
        self.outbound = OutboundRelay(settings, self.publisher)
        self.broker_watch = watch_for(settings.broker_url)
        postgres = self.engine.dialect.name == "postgresql"
        # Why the relay does not LISTEN (None: it does); said in its first line.
        self.not_listening = _why_not_listening(settings, postgres)
        self.listener = (
            Listener(self.engine, check=settings.relay_listen == "auto")
            if self.not_listening is None
            else None
        )
        self.poll_seconds = (
            settings.relay_poll_seconds
            if postgres
            else min(settings.relay_poll_seconds, SQLITE_POLL_SECONDS)
        )
        self.published = 0
        # Batches the broker refused (an outage shows as this growing).
        self.refused = 0
        self._stopping = threading.Event()
        self._outage: tuple[str, float] | None = None  # what is down, since when
        self._active_until = 0.0

    def stop(self) -> None:
        """Ask the loop to end after the batch in hand."""
        self._stopping.set()

    def run(self) -> None:
        """Publish due events until stopped."""
        if self.not_listening is None:
            log.info(
                "relay started: %s database, woken by NOTIFY, else polling every %.2f s, "
                "batches of %d",
                self.engine.dialect.name,
                self.poll_seconds,
                BATCH,
            )
            self._start_listening()
        else:
            log.info(
                "relay started: %s database, polling every %.2f s without LISTEN (%s), "
                "batches of %d",
                self.engine.dialect.name,
                self.poll_seconds,
                self.not_listening,
                BATCH,
            )
        wait = OUTAGE_FIRST_WAIT
        reported_at, reported = time.monotonic(), 0
        try:
            while not self._stopping.is_set():
                try:
                    if self.broker_watch is not None:
                        self.broker_watch.check(self.engine)
                    count = self.publish_due()
                    count += self.outbound.step(self.engine)
                except BrokerUnavailable as exc:
                    self.refused += 1
                    self._down("broker", exc.__cause__ or exc, "check BROKER_URL and the broker")
                except SQLAlchemyError as exc:
                    self._down(
                        "database",
                        exc,
                        "check DATABASE_URL, that the database runs and is migrated "
                        "(`rivya-hooks db upgrade`)",
                    )
                    self._drop_listener()
                except Exception:
                    # Not an outage we know: say everything once, then keep trying.
                    log.exception("relay: unexpected error; trying again in %.1f s", wait)
                    self._drop_listener()
                else:
                    self._up()
                    wait = OUTAGE_FIRST_WAIT
                    if time.monotonic() - reported_at >= PROGRESS_EVERY_SECONDS:
                        if self.published > reported:
                            log.info(
                                "relay: published %d events in the last %.0f s (%d since start)",
                                self.published - reported,
                                time.monotonic() - reported_at,
                                self.published,
                            )
                        reported_at, reported = time.monotonic(), self.published
                    if count:
                        self._active_until = time.monotonic() + RELAY_ACTIVE_SECONDS
                    if count < BATCH:
                        # A wake the outbound half put off is taken at the next short look.
                        awake = time.monotonic() < self._active_until or self.outbound.woken
                        self._wait_for_work(ACTIVE_POLL_SECONDS if awake else self.poll_seconds)
                    continue
                self._sleep(wait)
                wait = min(wait * 2, OUTAGE_MAX_WAIT)
        finally:
            self.close()
            log.info("relay stopped: published %d events since start", self.published)

    def close(self) -> None:
        self._drop_listener()
        self.publisher.close()
        if self.broker_watch is not None:
            self.broker_watch.close()
        self.engine.dispose()

    @property
    def broker_checks(self) -> int:
        """Return how many times the broker's sentinel was read (0 without a Redis broker)."""
        return self.broker_watch.checks if self.broker_watch is not None else 0

    def publish_due(self) -> int:
        """Publish one batch of due events; return how many were published."""
        with self.engine.begin() as connection:
            # The database's clock decides what is due, whichever host the relay runs on.
            now = database_now(connection)
            due = due_events(connection, now, BATCH)
            if not due:
                return 0
            reach("relay.claimed")
            try:
                self.publisher.publish([(event_id, trace) for _, event_id, trace, _ in due])
            except Exception as exc:  # kombu and redis raise many types for a dead broker
                RELAY_PUBLISHED.labels("failed").inc(len(due))
                raise BrokerUnavailable(str(exc)) from exc
            reach("relay.published")
            mark_enqueued(connection, [pk for pk, _, _, _ in due], now)
        reach("relay.marked")
        published_at = utcnow()
        for *_, due_at in due:
            RELAY_LAG.observe(max(0.0, (published_at - due_at).total_seconds()))
        RELAY_PUBLISHED.labels("published").inc(len(due))
        self.published += len(due)
        log.debug("relay: published %d event(s)", len(due))
        return len(due)

    def backlog(self) -> int:
        """Return how many events are due and not yet published."""
        with self.engine.connect() as connection:
            now = database_now(connection)
            return int(
                connection.scalar(
                    select(func.count())
                    .select_from(WebhookEvent)
                    .where(text(DUE_PREDICATE), WebhookEvent.next_attempt_at <= now)
                )
                or 0
            )

    def _start_listening(self) -> None:
        """Check LISTEN before the first batch, so that the start says how the relay waits."""
        if self.listener is None:
            return
        try:
            self.listener.start()
        except ListenUnsupported:
            self._poll_without_listen()
        except Exception as exc:
            # The database is down: the loop says so; the first wait checks again.
            log.debug("relay: LISTEN not started yet: %s", exc)
            self._drop_listener()

    def _poll_without_listen(self) -> None:
        self.listener = None
        self.not_listening = "no notification came back through DATABASE_URL"
        # Whatever loses LISTEN loses prepared statements too: an engine that prepares none.
        self.engine.dispose()
        self.engine = make_engine(
            self.settings.database_url,
            transaction_pooling=True,
            data_keys=self.settings.data_encryption_keys,
        )
        log.warning(
            "relay: LISTEN gets no notifications through DATABASE_URL within %.0f s (a pooler in "
            "transaction mode, such as PgBouncer?); polling every %.2f s without LISTEN from "
            "now on, without prepared statements; next: set DATABASE_POOLER=pgbouncer for "
            "every role (the others need it too)",
            LISTEN_CHECK_SECONDS,
            self.poll_seconds,
        )

    def _wait_for_work(self, seconds: float) -> None:
        """Wait up to `seconds`, less if a notification comes or a stop is asked for."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self.listener is None:
                self._stopping.wait(min(left, WAIT_SLICE_SECONDS))
                continue
            try:
                payloads = self.listener.wait(min(left, WAIT_SLICE_SECONDS))
                if payloads:
                    if OUTBOUND_WAKE in payloads:
                        self.outbound.wake()
                    return
            except ListenUnsupported:
                self._poll_without_listen()
            except Exception as exc:
                # Polling still works without it; the next wait reconnects.
                log.warning("relay: LISTEN connection lost (%s); polling", type(exc).__name__)
                self._drop_listener()
                self._stopping.wait(min(left, WAIT_SLICE_SECONDS))

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def _drop_listener(self) -> None:
        if self.listener is not None:
            try:
                self.listener.close()
            except Exception as exc:
                log.debug("relay: closing the LISTEN connection failed: %s", exc)

    def _down(self, what: str, cause: BaseException, next_step: str) -> None:
        if self._outage is not None and self._outage[0] == what:
            log.debug("relay: %s still unavailable: %s", what, cause)
            return
        self._outage = (what, time.monotonic())
        log.error(
            "relay: %s unavailable (%s: %s); publishing stopped, retrying every %.0f s at most; "
            "next: %s",
            what,
            type(cause).__name__,
            str(cause)[:300],
            OUTAGE_MAX_WAIT,
            next_step,
        )

    def _up(self) -> None:
        if self._outage is None:
            return
        what, since = self._outage
        self._outage = None
        log.warning(
            "relay: %s reachable again after %.1f s; publishing resumed",
            what,
            time.monotonic() - since,
        )


def _why_not_listening(settings: Settings, postgres: bool) -> str | None:
    """Return why the relay only polls, or None when it LISTENs."""
    if not postgres:
        return "SQLite has no notifications"
    if settings.relay_listen == "off":
        return "RELAY_LISTEN=off"
    if settings.relay_listen == "auto" and settings.transaction_pooling:
        return "DATABASE_POOLER=pgbouncer: transaction pooling cannot keep a LISTEN"
    return None
