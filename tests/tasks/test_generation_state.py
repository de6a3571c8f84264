"""The generation state machine: terminal states stay, older updates never win."""

from __future__ import annotations

from typing import Any

from models.generations import Generation, GenerationStatus
from rivyahooks_protocol.generation import GenerationDocument, parse_generation
from tasks.generation_state import apply_generation


def document(status: str, updated_at: str, **extra: Any) -> GenerationDocument:
    return parse_generation(
        {
            "id": "task_1",
            "status": status,
            "model": "img-1",
            "reserved_credits": 4,
            "final_credits": 0,
            "created_at": "2026-05-11T10:00:00.000Z",
            "updated_at": updated_at,
            "result": None,
            "error": None,
            **extra,
        }
    )


def fresh() -> Generation:
    return Generation(task_id="task_1", status=GenerationStatus.QUEUED)


def test_newer_update_applies() -> None:
    generation = fresh()
    assert apply_generation(generation, document("processing", "2026-05-11T10:00:01.000Z"))
    assert generation.status is GenerationStatus.PROCESSING
    assert generation.reserved_credits == 4


def test_older_update_never_overwrites_newer() -> None:
    generation = fresh()
    apply_generation(generation, document("processing", "2026-05-11T10:00:05.000Z"))
    assert not apply_generation(generation, document("queued", "2026-05-11T10:00:01.000Z"))
    assert generation.status is GenerationStatus.PROCESSING


def test_terminal_state_never_changes_back() -> None:
    generation = fresh()
    failed = document("failed", "2026-05-11T10:00:05.000Z", error={"code": "model_timeout"})
    apply_generation(generation, failed)
    later = document("processing", "2026-05-11T10:09:00.000Z")
    assert not apply_generation(generation, later)
    assert generation.status is GenerationStatus.FAILED
    assert generation.error_code == "model_timeout"


def test_failed_without_error_is_recorded_as_unknown() -> None:
    generation = fresh()
    apply_generation(generation, document("failed", "2026-05-11T10:00:05.000Z"))
    assert generation.error_code == "unknown"


def test_succeeded_without_url_is_an_anomaly_not_a_crash() -> None:
    generation = fresh()
    empty = {"primary_url": None, "urls": []}
    apply_generation(generation, document("succeeded", "2026-05-11T10:00:05.000Z", result=empty))
    assert generation.status is GenerationStatus.SUCCEEDED
    assert generation.anomaly == "succeeded with no result URL"


def test_an_unknown_status_changes_nothing() -> None:
    generation = fresh()
    assert not apply_generation(generation, document("paused", "2026-05-11T10:00:05.000Z"))
    assert generation.status is GenerationStatus.QUEUED
    assert generation.model is None
    assert generation.rivya_updated_at is None


def test_fields_are_taken_from_the_document() -> None:
    generation = fresh()
    failed = document(
        "failed",
        "2026-05-11T10:00:05.000Z",
        final_credits=1.5,
        error={"code": "model_timeout", "message": "took too long"},
    )
    assert apply_generation(generation, failed)
    assert (generation.model, generation.reserved_credits, generation.final_credits) == (
        "img-1",
        4.0,
        1.5,
    )
    assert generation.rivya_created_at == failed.created_at
    assert generation.rivya_updated_at == failed.updated_at
    assert generation.finished_at == failed.updated_at
    assert (generation.error_code, generation.error_message) == ("model_timeout", "took too long")


def test_an_unreadable_time_keeps_the_one_already_recorded() -> None:
    generation = fresh()
    apply_generation(generation, document("processing", "2026-05-11T10:00:05.000Z"))
    recorded = generation.rivya_updated_at
    assert apply_generation(generation, document("processing", "soon", created_at=None))
    assert generation.rivya_updated_at == recorded
    assert generation.rivya_created_at is not None
