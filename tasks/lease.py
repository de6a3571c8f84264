"""A running attempt keeps its claim: its lease is renewed until the attempt ends.

The lease is short (PROCESS_LEASE_SECONDS), so a killed worker's event is free again within
a minute; a thread renews it every third of the lease while the attempt runs. Renewal is a
compare-and-set on the claim's token, so it never revives a claim taken over or finished,
and it stops at the hard time limit (plus grace): an attempt stuck past it loses its claim.
A failed renewal is logged, not fatal: the next one may pass, and if the lease lapses the
claim's compare-and-set drops this attempt's late outcome.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from types import TracebackType

from sqlalchemy import update

from models.clock import database_now
from models.events import EventStatus, WebhookEvent
from tasks.claims import Claim
from tasks.runtime import Runtime

log = logging.getLogger(__name__)


def renew_lease(runtime: Runtime, claim: Claim) -> bool:
    """Extend the claim's lease by a full lease from the database's now; False if it is gone."""
    with runtime.sessions.begin() as session:
        now = database_now(session)
        renewed = session.execute(
            update(WebhookEvent)
            .where(
                WebhookEvent.id == claim.pk,
                WebhookEvent.status == EventStatus.PROCESSING,
                WebhookEvent.claim_token == claim.token,
            )
            .values(lease_expires_at=now + dt.timedelta(seconds=runtime.limits.lease))
        ).rowcount  # type: ignore[attr-defined]
    return bool(renewed)


class LeaseKeeper:
    """Renew a claim's lease in a thread while the `with` block (the attempt) runs."""

    def __init__(self, runtime: Runtime, claim: Claim) -> None:
        self._runtime = runtime
        self._claim = claim
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lease-{claim.event_id}", daemon=True
        )

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        # A renewal under way finishes first; its compare-and-set keeps it harmless anyway.
        self._thread.join(timeout=self._runtime.limits.renew_every)

    def _run(self) -> None:
        limits = self._runtime.limits
        ends = time.monotonic() + limits.renewals_end - limits.lease
        while not self._stop.wait(limits.renew_every):
            if time.monotonic() >= ends:
                log.warning(
                    "event %s: attempt %d ran into its time limit; its lease is no longer renewed",
                    self._claim.event_id,
                    self._claim.number,
                )
                return
            try:
                if not renew_lease(self._runtime, self._claim):
                    log.warning(
                        "event %s: attempt %d's claim is gone (taken over or finished); "
                        "lease renewals stop",
                        self._claim.event_id,
                        self._claim.number,
                    )
                    return
            except Exception as exc:  # the database may be away; the next renewal may pass
                log.warning(
                    "event %s: lease renewal failed (%s: %s)",
                    self._claim.event_id,
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                )
