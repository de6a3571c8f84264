"""The demo's scenario: create generations, let Rivya deliver (and drop) their events, reconcile.

It returns once every generation it created has reached a final status here, by webhook or
by reconcile, or raises TimeoutError.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import func, select

from models.events import UNFINISHED_STATUSES, EventSource, WebhookEvent
from models.generations import Generation
from rivyahooks.demo.progress import say, wait_until
from tasks.runtime import Runtime

MODELS = ("rivya-image-1", "rivya-audio-1")


def simulator_state(api_base: str) -> dict[str, Any]:
    """Return the simulator's own summary: generations and deliveries by status."""
    return dict(httpx.get(f"{api_base}/_sim/state", timeout=5).json())


def run_scenario(
    runtime: Runtime, watch: Callable[[], None], count: int, deadline: float
) -> list[str]:
    """Create `count` generations and wait until each is final here; return their task ids.

    `watch` raises if a role died; `deadline` (time.monotonic) bounds the last wait.
    """
    settings = runtime.settings
    sessions = runtime.sessions
    client = runtime.rivya
    say(f"creating {count} generations through the API, recorded as `rivya-hooks submit` does")
    from tasks.generation_state import record_submitted

    task_ids: list[str] = []
    for number in range(count):
        generation = client.create_generation(
            MODELS[number % len(MODELS)],
            prompt=f"demo generation {number}",
            idempotency_key=str(uuid.uuid4()),
        )
        task_ids.append(str(generation["id"]))
        with sessions.begin() as session:
            record_submitted(session, generation)

    def all_terminal_at_rivya() -> bool:
        state = simulator_state(settings.rivya_api_base)
        pending = state["generations"]["queued"] + state["generations"]["processing"]
        return bool(pending == 0)

    say("waiting for Rivya to finish them and deliver what it does not drop")
    wait_until("generations to finish", all_terminal_at_rivya, watch, 60)

    def deliveries_settled() -> bool:
        with sessions() as session:
            unfinished = session.scalar(
                select(func.count()).where(WebhookEvent.status.in_(UNFINISHED_STATUSES))
            )
        return unfinished == 0

    def simulator_idle() -> bool:
        busy = httpx.get(f"{settings.rivya_api_base}/_sim/deliveries", timeout=5).json()
        return bool(busy["pending"] == 0 and busy["running"] == 0)

    wait_until("the last deliveries and their retries", simulator_idle, watch, 60)
    wait_until("delivered events to be processed", deliveries_settled, watch, 60)
    with sessions() as session:
        by_webhook = session.scalar(
            select(func.count()).where(WebhookEvent.source == EventSource.WEBHOOK)
        )
    say(f"{by_webhook} events arrived by webhook; running reconcile for the rest")

    from tasks.reconcile import reconcile

    summary = reconcile(runtime)
    say(
        f"reconcile: {summary.events_listed} events listed, {summary.events_missing} missing here, "
        f"{summary.stored} stored for the relay"
    )

    def everything_settled() -> bool:
        if not deliveries_settled():
            return False
        with sessions() as session:
            terminal = session.scalar(
                select(func.count()).where(
                    Generation.task_id.in_(task_ids), Generation.status.in_(["succeeded", "failed"])
                )
            )
        return terminal == len(task_ids)

    remaining = max(10.0, deadline - time.monotonic())
    wait_until("reconciled events to be processed", everything_settled, watch, remaining)
    return task_ids
