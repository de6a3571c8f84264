"""One attempt to deliver a message to an app: claim it, sign it, POST it, record what happened.

The Standard Webhooks headers: `webhook-id` is the message id (the same on every attempt,
so the app deduplicates by it), `webhook-timestamp` the time of this attempt, and
`webhook-signature` a `v1,` entry per secret (two during a rotation's grace period) and a
`v1a,` entry when the app has a key pair. The endpoint must answer 2xx within
OUTBOUND_TIMEOUT_SECONDS. Anything else is a failed attempt, retried on Svix's schedule
(immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, each with jitter, never sooner than
a `Retry-After` asks); after the last it is given up. 410 Gone disables the app at once,
and an app that failed every attempt for OUTBOUND_DISABLE_AFTER_HOURS is disabled too: its
open deliveries are given up (replay sends them once it is enabled again).

The URL passes the downloads' guard (https to public addresses only, unless the host is in
OUTBOUND_ALLOWED_HOSTS) on every attempt, and the connection goes to the checked address,
so a name that changes its address in between cannot redirect it. Redirects are not
followed: a 3xx is a failed attempt.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.orm import Session

from models.apps import App
from models.clock import database_now
from models.outbound import RESPONSE_EXCERPT_BYTES, DeliveryStatus, disable_app
from models.outbound_sending import Attempt, Claim, claim, claim_next, record
from rivyahooks_foundation.metrics.outbound import (
    OUTBOUND_ATTEMPT_SECONDS,
    OUTBOUND_DISABLED,
    OUTBOUND_MESSAGES,
)
from rivyahooks_protocol import contract
from rivyahooks_protocol.backoff import parse_retry_after
from rivyahooks_protocol.download import checked_target, pinned_request
from rivyahooks_protocol.errors import DisallowedURLError
from rivyahooks_protocol.signatures import sign
from tasks.runtime import Runtime

log = logging.getLogger(__name__)

# Waits before attempts 2, 3, ... (the first is immediate): Svix's schedule.
RETRY_SCHEDULE_SECONDS = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
MAX_ATTEMPTS = len(RETRY_SCHEDULE_SECONDS) + 1
JITTER = 0.2
# A Retry-After beyond this is read as this: a message is not held back for days.
MAX_RETRY_AFTER_SECONDS = 10 * 3600
USER_AGENT = "rivya-hooks-webhooks/1"
# How long one run goes on sending its app's next due messages after a 2xx: long enough to
# carry a busy app's stream, short enough that every app gets a turn of the processes.
CHAIN_SECONDS = 1.0


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    excerpt: str | None
    error: str | None
    retry_after: float | None
    latency_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_delay(attempts: int, retry_after: float | None = None) -> float | None:
    """Return the wait after `attempts` failed attempts, or None when they are used up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    step = RETRY_SCHEDULE_SECONDS[attempts - 1]
    wait = random.uniform(step * (1 - JITTER), step * (1 + JITTER))
    if retry_after is not None:
        wait = max(wait, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return wait


def deliver(runtime: Runtime, delivery_id: int) -> None:
    """Make one attempt of the delivery if it is still due; record its outcome.

    While the app answers 2xx and has more messages due, the run sends those too, for at
    most CHAIN_SECONDS, each claimed in the transaction that records the one before: the app's
    slot passes from one message to the next (its in-flight count does not change), over the
    connection already open to it, without a round through the relay and the broker. A
    failed attempt ends the run: its app's next messages wait for the relay's schedule.
    """
    lease = _lease(runtime)
    # One statement: autocommit spares it the round trips of BEGIN and COMMIT.
    with runtime.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        claimed = claim(connection, delivery_id, lease)
    if claimed is None:
        log.info("outbound delivery %s is no longer due; message dropped", delivery_id)
        return
    chain_ends = time.monotonic() + CHAIN_SECONDS
    while claimed is not None:
        answer = post(runtime, claimed.app.url, claimed.payload, _headers(claimed))
        more = answer.ok and time.monotonic() < chain_ends
        claimed = _record(runtime, claimed, answer, lease if more else None)


def _lease(runtime: Runtime) -> dt.timedelta:
    # Past the POST's timeout with room to record it: a lapsed lease means a lost worker.
    return dt.timedelta(seconds=runtime.settings.outbound_timeout_seconds * 2 + 30)


def _headers(claimed: Claim) -> dict[str, str]:
    app = claimed.app
    headers = sign(
        contract.SCHEME_STANDARD,
        app.secrets_at(claimed.claimed_at),
        claimed.payload,
        webhook_id=claimed.message_id,
        timestamp=int(time.time()),
        private_keys=[app.signing_key] if app.signing_key else (),
    )
    headers["content-type"] = "application/json"
    headers["user-agent"] = USER_AGENT
    return headers


def post(runtime: Runtime, url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """POST the message through the guard; return what the endpoint answered, never raise."""
    settings = runtime.settings
    started = time.monotonic()

    def answer(status: int | None = None, **fields: object) -> Answer:
        latency = int((time.monotonic() - started) * 1000)
        return Answer(status, latency_ms=latency, **fields)  # type: ignore[arg-type]

    try:
        target = checked_target(url, settings.outbound_allowed_hosts)
    except DisallowedURLError as exc:
        return answer(excerpt=None, error=f"refused by the guard: {exc}", retry_after=None)
    client = runtime.outbound
    addresses: tuple[str | None, ...] = target.addresses or (None,)
    for position, address in enumerate(addresses):
        try:
            # Inside the try: a URL only httpx refuses is a failed attempt, recorded, not a
            # crash that would leave the delivery `sending` until its lease lapsed.
            request = pinned_request(
                client,
                url,
                address,
                settings.outbound_timeout_seconds,
                method="POST",
                content=body,
                headers=headers,
            )
            response = client.send(request, stream=True, follow_redirects=False)
            try:
                excerpt = _excerpt(response)
            finally:
                response.close()
        except httpx.ConnectError as exc:
            if position + 1 < len(addresses):
                continue
            return answer(
                excerpt=None, error=f"{type(exc).__name__}: {exc}"[:300], retry_after=None
            )
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            return answer(
                excerpt=None, error=f"{type(exc).__name__}: {exc}"[:300], retry_after=None
            )
        except DisallowedURLError as exc:
            return answer(excerpt=None, error=f"refused by the guard: {exc}", retry_after=None)
        return answer(
            response.status_code,
            excerpt=excerpt,
            error=None,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    raise AssertionError("unreachable: at least one address is tried")


def _excerpt(response: httpx.Response) -> str:
    """Read at most the first RESPONSE_EXCERPT_BYTES of the answer (the rest is not read)."""
    kept = b""
    for chunk in response.iter_raw():
        kept += chunk
        if len(kept) >= RESPONSE_EXCERPT_BYTES:
            break
    return kept[:RESPONSE_EXCERPT_BYTES].decode("utf-8", errors="replace").replace("\x00", "")


def _record(
    runtime: Runtime, claimed: Claim, answer: Answer, next_lease: dt.timedelta | None
) -> Claim | None:
    """Record the attempt; with `next_lease`, claim the app's next due delivery with it."""
    settings = runtime.settings
    ok, gone = answer.ok, answer.status_code == 410
    OUTBOUND_ATTEMPT_SECONDS.observe(answer.latency_ms / 1000)
    error = answer.error or (None if ok else f"answered {answer.status_code}")
    attempt = _attempt(claimed.number, answer, error)
    with runtime.sessions.begin() as session:
        connection = session.connection()
        moved = record(connection, claimed, attempt)
        if not ok or claimed.app_failing:
            stored = session.get(App, claimed.app.id)
            if stored is not None:
                now = database_now(session)
                _app_health(session, stored, ok, gone, now, settings.outbound_disable_after_hours)
        following = claim_next(connection, claimed.app.id, next_lease) if next_lease else None
    if not moved:
        log.warning(
            "outbound delivery %s: attempt %d's claim was taken back meanwhile; outcome kept "
            "in its attempt only",
            claimed.delivery_id,
            claimed.number,
        )
    OUTBOUND_MESSAGES.labels(attempt.label).inc()
    log.log(
        logging.INFO if ok else logging.WARNING,
        "outbound %s to %s attempt %d: %s",
        claimed.delivery_id,
        claimed.app.name,
        claimed.number,
        "delivered" if ok else f"{error}; {attempt.label}",
    )
    return following


def _attempt(number: int, answer: Answer, error: str | None) -> Attempt:
    """Return what attempt `number` comes to: delivered, retried after a wait, or given up."""
    fields: dict[str, Any] = {
        "status_code": answer.status_code,
        "error": error,
        "excerpt": answer.excerpt,
        "latency_ms": answer.latency_ms,
    }
    if answer.ok:
        return Attempt(DeliveryStatus.DELIVERED, "delivered", **fields)
    if answer.status_code == 410:
        reason = "the endpoint answered 410 Gone; the app was disabled"
        return Attempt(DeliveryStatus.FAILED, "failed", reason=reason, **fields)
    delay = retry_delay(number, answer.retry_after)
    if delay is None:
        reason = f"gave up after {number} attempts; last: {error}"[:300]
        return Attempt(DeliveryStatus.FAILED, "failed", reason=reason, **fields)
    wait = dt.timedelta(seconds=delay)
    return Attempt(DeliveryStatus.PENDING, "retry", retry_in=wait, **fields)


def _app_health(
    session: Session, app: App, ok: bool, gone: bool, now: dt.datetime, disable_after_hours: int
) -> None:
    """Keep the app's failure streak; disable it on 410 or after a streak long enough."""
    if ok:
        app.failing_since = None
        return
    if app.failing_since is None:
        app.failing_since = now
    if not app.enabled:
        return
    reason = None
    if gone:
        reason = "its endpoint answered 410 Gone"
    elif now - app.failing_since >= dt.timedelta(hours=disable_after_hours):
        reason = f"every attempt failed for {disable_after_hours} hours"
    if reason is None:
        return
    given_up = disable_app(session, app, reason, now)
    OUTBOUND_DISABLED.inc()
    log.error(
        "app %s disabled: %s; %d open message(s) given up; next: fix the endpoint, then "
        "`rivya-hooks apps enable %s` and `rivya-hooks apps replay %s --failed-only`",
        app.name,
        reason,
        given_up,
        app.name,
        app.name,
    )
