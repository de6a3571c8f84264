"""The generation state machine: terminal states stay, older updates never win."""

from __future__ import annotations

from typing import Any

from models.generations import Generation, GenerationStatus
from tasks.generation_state import apply_generation, result_urls


def document(status: str, updated_at: str, **extra: Any) -> dict[str, Any]:
    return {
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


def test_result_urls_fall_back_to_primary_url() -> None:
    assert result_urls({"result": {"primary_url": "https://x/1", "urls": []}}) == ["https://x/1"]
    assert result_urls({"result": {"primary_url": "https://x/1", "urls": ["a", "b"]}}) == ["a", "b"]
    assert result_urls({"result": None}) == []
