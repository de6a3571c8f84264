"""Downstream apps for the outbound tests: real HTTP servers that verify every message.

Each app checks the signature with the `standardwebhooks` package (the reference
implementation, not our code), deduplicates by `webhook-id` as the README tells app
developers to, and keeps what it got. How it answers is the test's to choose.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug.wrappers import Request, Response

from models.apps import App, new_app_id, new_secret
from models.base import utcnow
from models.clock import database_now
from models.generations import Generation, GenerationOutput, GenerationStatus, record_change
from models.outbound import OutboundDelivery, due_deliveries, mark_enqueued
from tasks.outbound_delivery import deliver
from tasks.outbound_fanout import fan_out
from tasks.runtime import Runtime
from tests.support.httpserver import serving

Answer = Callable[[Request], Response]


def accept(_request: Request) -> Response:
    return Response(status=204)


@dataclass
class ReceivingApp:
    secret: str
    answer: Answer = accept
    url: str = ""
    # Verified messages by webhook-id, and every verified delivery in order (repeats too).
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    bodies: dict[str, bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: Request) -> Response:
        body = request.get_data()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError as exc:
            with self._lock:
                self.refused.append(str(exc))
            return Response(status=400)
        with self._lock:
            self.received.append(headers["webhook-id"])
            self.messages.setdefault(headers["webhook-id"], json.loads(body))
            self.bodies.setdefault(headers["webhook-id"], body)
            self.headers.append(headers)
        return self.answer(request)


@contextmanager
def receiving_app(secret: str, answer: Answer = accept) -> Iterator[ReceivingApp]:
    app = ReceivingApp(secret, answer)
    with serving(app) as base:
        app.url = base + "/hooks"
        yield app


def add_app(
    sessions: sessionmaker[Session],
    name: str,
    url: str,
    events: tuple[str, ...] = ("result.ready", "result.failed"),
    signing_key: bytes | None = None,
) -> tuple[str, str]:
    """Store an app; return (its id, its secret)."""
    secret = new_secret()
    app_id = new_app_id()
    with sessions.begin() as session:
        session.add(
            App(
                id=app_id,
                name=name,
                url=url,
                events=list(events),
                secret=secret.encode(),
                signing_key=signing_key,
                enabled=True,
            )
        )
    return app_id, secret


def store_result(
    sessions: sessionmaker[Session],
    task_id: str,
    status: GenerationStatus = GenerationStatus.SUCCEEDED,
    outputs: int = 1,
) -> None:
    """Write a generation in its final state, as the worker would, entering the feed."""
    now = utcnow()
    with sessions.begin() as session:
        generation = session.scalars(
            select(Generation).where(Generation.task_id == task_id)
        ).one_or_none()
        if generation is None:
            generation = Generation(task_id=task_id, model="flux", status=status)
            session.add(generation)
        generation.status = status
        generation.finished_at = now if status.terminal else None
        generation.final_credits = (generation.final_credits or 0) + 1
        if status is GenerationStatus.SUCCEEDED and generation.results_stored_at is None:
            session.flush()
            for index in range(outputs):
                session.add(
                    GenerationOutput(
                        task_id=task_id,
                        index=index,
                        content_type="image/png",
                        size_bytes=10,
                        sha256="0" * 64,
                        storage_key=f"{task_id}/{index}.png",
                        source_host="127.0.0.1",
                    )
                )
            generation.results_stored_at = now
        elif status is GenerationStatus.FAILED:
            generation.error_code = "content_policy"
        record_change(session, task_id)


def pump(runtime: Runtime, *, fan: bool = True) -> int:
    """Do what the relay and the sending worker do, in this thread: return attempts made."""
    made = 0
    while True:
        with runtime.sessions.begin() as session:
            if fan:
                fan_out(session, runtime.settings.public_base_url)
            now = database_now(session)
            due = due_deliveries(session, now, runtime.settings.outbound_max_in_flight, 500)
            ids = [pk for pk, _ in due]
            mark_enqueued(session, ids, now)
        if not ids:
            return made
        for pk in ids:
            deliver(runtime, pk)
            made += 1


def make_due(sessions: sessionmaker[Session]) -> None:
    """Let time pass: every scheduled retry falls due now."""
    with sessions.begin() as session:
        for delivery in session.scalars(select(OutboundDelivery)):
            if delivery.next_attempt_at is not None:
                delivery.next_attempt_at = utcnow() - dt.timedelta(seconds=1)
