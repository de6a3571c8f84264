"""What downstream apps read: GET /results."""

from __future__ import annotations

from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.events import EventSource, EventStatus
from models.generations import Generation, GenerationOutput, GenerationStatus
from models.inbox import insert_event
from receiver import create_app
from rivyahooks.settings import Settings

TOKEN = "results-token-for-tests"


def seed(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add(Generation(task_id="task_ok", status=GenerationStatus.SUCCEEDED, model="m"))
        session.add(
            Generation(
                task_id="task_bad", status=GenerationStatus.FAILED, error_code="model_timeout"
            )
        )
        session.flush()
        session.add(
            GenerationOutput(
                task_id="task_ok",
                index=0,
                content_type="image/png",
                size_bytes=10,
                sha256="ab" * 32,
                storage_key="task_ok/0000-ab",
                source_host="cdn",
                stored_at=utcnow(),
            )
        )
        insert_event(session, event_id="evt_1", body=b"{}", source=EventSource.WEBHOOK)
        insert_event(
            session,
            event_id="evt_2",
            body=b"x",
            source=EventSource.WEBHOOK,
            status=EventStatus.QUARANTINED,
        )


def results_app(settings: Settings) -> Flask:
    return create_app(settings.replace(results_api_token=TOKEN))


def test_results_are_closed_without_a_configured_token(client, sessions) -> None:  # type: ignore[no-untyped-def]
    seed(sessions)
    response = client.get("/results/task_ok")
    assert response.status_code == 404
    assert response.json == {"error": {"code": "results_api_disabled"}}


def test_results_need_the_token(settings: Settings, sessions) -> None:  # type: ignore[no-untyped-def]
    seed(sessions)
    app = results_app(settings)
    client = app.test_client()
    assert client.get("/results/task_ok").status_code == 401
    wrong = client.get("/results/task_ok", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    ok = client.get("/results/task_ok", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    assert ok.json["status"] == "succeeded"
    assert ok.json["outputs"][0]["sha256"] == "ab" * 32
    app.extensions["rivyahooks"].engine.dispose()


def test_results_list_filters_by_status(settings: Settings, sessions) -> None:  # type: ignore[no-untyped-def]
    seed(sessions)
    app = results_app(settings)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    client = app.test_client()
    failed = client.get("/results?status=failed", headers=auth).json
    assert [g["task_id"] for g in failed["data"]] == ["task_bad"]
    assert failed["data"][0]["error"]["code"] == "model_timeout"
    assert client.get("/results?status=bogus", headers=auth).status_code == 400
    assert client.get("/results/task_nope", headers=auth).status_code == 404
    app.extensions["rivyahooks"].engine.dispose()
