"""Deliver events to endpoints: signed POSTs from a thread pool, retried, faults applied.

Like Rivya: POST, Content-Type application/json, no redirects followed, a short timeout, only
2xx counts as delivered, failures retried with backoff (compressed from days to seconds),
every attempt recorded. Faults decide per (event, endpoint) whether the delivery is dropped,
duplicated, delayed or held back so later events overtake it.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from rivyahooks_protocol.signatures import sign
from rivyahooks_simulator.config import SimConfig
from rivyahooks_simulator.state import DeliveryAttempt, SimState, StoredEvent, new_id, now_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Job:
    event_id: str
    endpoint_id: str
    attempt: int
    duplicate: bool = False


class Dispatcher:
    """Schedule and run delivery attempts until stopped."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self._heap: list[tuple[float, int, _Job]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._running = 0
        self._pool = ThreadPoolExecutor(
            max_workers=state.config.delivery_workers, thread_name_prefix="sim-delivery"
        )
        self._http = httpx.Client(follow_redirects=False)
        self._thread = threading.Thread(target=self._run, name="sim-dispatcher", daemon=True)

    def start(self) -> None:
        """Start the scheduler thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop scheduling, drop pending attempts and wait for running ones."""
        with self._cond:
            self._stopping = True
            self._heap.clear()
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()

    def running(self) -> int:
        """Return how many attempts are in flight."""
        with self._cond:
            return self._running

    def pending(self) -> int:
        """Return how many attempts are scheduled and not yet started."""
        with self._cond:
            return len(self._heap)

    def enqueue(self, event: StoredEvent, endpoint_ids: list[str], *, faults: bool = True) -> None:
        """Schedule first attempts for an event, applying drop/duplicate/delay/reorder."""
        if not faults:
            for endpoint_id in endpoint_ids:
                self._schedule(0.0, _Job(event.id, endpoint_id, 1))
            return
        self._enqueue_with_faults(event, endpoint_ids)

    def _enqueue_with_faults(self, event: StoredEvent, endpoint_ids: list[str]) -> None:
        injector = self.state.injector
        faults = injector.faults
        for endpoint_id in endpoint_ids:
            if injector.chance(faults.drop_ratio):
                self.state.mark_dropped(event.id, endpoint_id)
                continue
            delay = injector.uniform(0, faults.delay_max) if faults.delay_max > 0 else 0.0
            if injector.chance(faults.reorder_ratio):
                delay += injector.uniform(0.2, max(faults.delay_max, 1.0))
            self._schedule(delay, _Job(event.id, endpoint_id, 1))
            if injector.chance(faults.duplicate_ratio):
                with self.state.lock:
                    self.state.counters["deliveries_duplicated"] += 1
                self._schedule(
                    delay + injector.uniform(0.05, 0.3), _Job(event.id, endpoint_id, 1, True)
                )

    def _schedule(self, delay: float, job: _Job) -> None:
        with self._cond:
            if self._stopping:
                return
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), job))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        break
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                _, _, job = heapq.heappop(self._heap)
                self._running += 1
            try:
                self._pool.submit(self._attempt_counted, job)
            except RuntimeError:
                return  # the pool is shutting down

    def _attempt_counted(self, job: _Job) -> None:
        try:
            self._attempt(job)
        except Exception:
            # A bug here must not kill the pool thread silently or leak to the test runner.
            log.exception("delivery attempt failed unexpectedly")
        finally:
            with self._cond:
                self._running -= 1

    def _attempt(self, job: _Job) -> None:
        state = self.state
        with state.lock:
            endpoint = state.endpoints.get(job.endpoint_id)
            event = state.find_event(job.event_id)
            if endpoint is None or event is None or endpoint.status != "active":
                return
            url, scheme, secret = endpoint.url, endpoint.scheme, endpoint.secret
            body = json.dumps(event.payload, separators=(",", ":")).encode()
            event_type = event.type
            config = state.config
        headers = sign(scheme, [secret], body, webhook_id=job.event_id)
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = "Rivya-Webhooks/1.0 (simulator)"
        started = now_ms()
        status_code: int | None = None
        error: str | None = None
        try:
            response = self._http.post(
                url, content=body, headers=headers, timeout=config.delivery_timeout_seconds
            )
            status_code = response.status_code
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        attempt = DeliveryAttempt(
            id=new_id("whdel_"),
            endpoint_id=job.endpoint_id,
            event_id=job.event_id,
            event_type=event_type,
            attempt=job.attempt,
            duplicate=job.duplicate,
            started_ms=started,
            finished_ms=now_ms(),
            status_code=status_code,
            error=error,
        )
        final = attempt.succeeded or job.attempt >= config.delivery_max_attempts
        state.record_attempt(attempt, final)
        if not final and not job.duplicate:
            self._schedule(
                retry_delay(config, job.attempt),
                _Job(job.event_id, job.endpoint_id, job.attempt + 1),
            )


def retry_delay(config: SimConfig, attempt: int) -> float:
    """Seconds from failed attempt `attempt` (1-based) to the next: doubling, then capped."""
    return min(
        config.delivery_backoff_seconds * 2.0 ** (attempt - 1), config.delivery_backoff_max_seconds
    )
