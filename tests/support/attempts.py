"""Rivya doubles and row edits for the tests of an attempt's life: claims, outcomes, sweeps.

Each test runs the real processing code against a real database and a real HTTP server
(the simulator, or a small server answering as the simulator never would) and asserts on
the rows it leaves.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.wrappers import Request, Response

from models.events import WebhookEvent
from rivyahooks_foundation.settings import Settings
from rivyahooks_simulator.config import Faults, SimConfig
from rivyahooks_simulator.server import Simulator
from tasks.runtime import Runtime
from tests.support.httpserver import serving

OUTPUT_BYTES = 4096


def settings_for(settings: Settings, api_base: str, api_key: str = "rvya_sk_test") -> Settings:
    return settings.replace(
        rivya_api_base=api_base,
        rivya_api_key=api_key,
        download_allowed_hosts=("127.0.0.1",),
        rivya_max_attempts=1,
        # Retries fall due within milliseconds: the tests run the next attempt themselves.
        process_retry_base_seconds=0.01,
        process_time_limit_seconds=30,
    )


@contextmanager
def one_output_simulator() -> Iterator[Simulator]:
    """Run a simulator whose generations finish at once with one output each."""
    config = SimConfig(queued_seconds=0, processing_seconds=0, outputs=1, output_bytes=OUTPUT_BYTES)
    with Simulator(config=config, faults=Faults(), seed=9).start() as sim:
        yield sim


@contextmanager
def lifecycle_runtime(settings: Settings, simulator: Simulator) -> Iterator[Runtime]:
    """Yield a Runtime whose Rivya is `simulator`, with retries falling due at once."""
    runtime = Runtime(settings_for(settings, simulator.url, simulator.api_key))
    try:
        yield runtime
    finally:
        runtime.close()


@contextmanager
def rivya_answering(settings: Settings, answer: Callable[[Request], Response]) -> Iterator[Runtime]:
    """Yield a Runtime whose Rivya is a server answering with `answer`."""
    with serving(answer) as url:
        runtime = Runtime(settings_for(settings, url))
        try:
            yield runtime
        finally:
            runtime.close()


def generation(task_id: str, urls: list[str]) -> Response:
    document = {
        "id": task_id,
        "status": "succeeded",
        "model": "rivya-image-1",
        "reserved_credits": 1,
        "final_credits": 1,
        "created_at": "2026-05-11T10:00:00.000Z",
        "updated_at": "2026-05-11T10:00:05.000Z",
        "result": {"primary_url": urls[0], "urls": urls},
        "error": None,
    }
    return Response(json.dumps(document), content_type="application/json")


def change(sessions: sessionmaker[Session], event_id: str, **values: Any) -> None:
    with sessions.begin() as session:
        session.execute(
            update(WebhookEvent).where(WebhookEvent.event_id == event_id).values(**values)
        )
