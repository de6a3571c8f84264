"""Reading Rivya's generation object: every field, and what an odd one is read as."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import UTC, datetime
from typing import Any

import pytest

from rivyahooks_protocol.generation import (
    ERROR_CODE_MAX_CHARS,
    ERROR_MESSAGE_MAX_CHARS,
    GenerationDocument,
    GenerationError,
    parse_generation,
)


def generation(**fields: Any) -> dict[str, Any]:
    return {
        "id": "task_1",
        "object": "generation",
        "status": "succeeded",
        "model": "rivya-image-1",
        "reserved_credits": 4,
        "final_credits": 3.5,
        "created_at": "2026-05-11T10:00:00.000Z",
        "updated_at": "2026-05-11T10:00:05.250Z",
        "result": {"primary_url": "https://cdn/0", "urls": ["https://cdn/0", "https://cdn/1"]},
        "error": None,
        **fields,
    }


def test_a_well_formed_generation_reads_every_field() -> None:
    assert parse_generation(generation()) == GenerationDocument(
        status="succeeded",
        reported_status="succeeded",
        model="rivya-image-1",
        reserved_credits=4.0,
        final_credits=3.5,
        created_at=datetime(2026, 5, 11, 10, 0, tzinfo=UTC),
        updated_at=datetime(2026, 5, 11, 10, 0, 5, 250_000, tzinfo=UTC),
        error=None,
        result_urls=("https://cdn/0", "https://cdn/1"),
    )


def test_every_contract_status_is_known() -> None:
    for status in ("queued", "processing", "succeeded", "failed"):
        assert parse_generation(generation(status=status)).status == status


def test_an_unknown_or_missing_status_is_none_and_kept_as_sent() -> None:
    paused = parse_generation(generation(status="paused"))
    assert (paused.status, paused.reported_status) == (None, "paused")
    missing = parse_generation({"id": "task_1"})
    assert (missing.status, missing.reported_status) == (None, None)
    # Not a string: "None" or "1" must not pass for a status.
    assert parse_generation(generation(status=1)).status is None
    assert parse_generation(generation(status=["queued"])).reported_status == ["queued"]


def test_a_model_that_is_not_a_string_is_none() -> None:
    assert parse_generation(generation(model=7)).model is None
    assert parse_generation(generation(model=None)).model is None


def test_credits_read_numbers_but_not_bools_or_strings() -> None:
    assert parse_generation(generation(reserved_credits=0, final_credits=2)).final_credits == 2.0
    assert parse_generation(generation(reserved_credits=0)).reserved_credits == 0.0
    assert isinstance(parse_generation(generation(final_credits=2)).final_credits, float)
    for odd in (True, False, "4", None, [4], {"n": 4}):
        read = parse_generation(generation(reserved_credits=odd, final_credits=odd))
        assert (read.reserved_credits, read.final_credits) == (None, None)


def test_times_read_leniently() -> None:
    read = parse_generation(generation(created_at="2026-05-11T12:00:00+02:00"))
    assert read.created_at == datetime(2026, 5, 11, 10, 0, tzinfo=UTC)
    assert read.created_at is not None
    assert read.created_at.tzinfo is UTC
    for odd in ("not a time", "", 1_778_493_600, None, True):
        read = parse_generation(generation(created_at=odd, updated_at=odd))
        assert (read.created_at, read.updated_at) == (None, None)


def test_an_error_object_is_read_and_cut_to_length() -> None:
    read = parse_generation(
        generation(status="failed", error={"code": "model_timeout", "message": "too slow"})
    )
    assert read.error == GenerationError(code="model_timeout", message="too slow")

    long = parse_generation(generation(error={"code": "c" * 500, "message": "m" * 10_000}))
    assert long.error == GenerationError(
        code="c" * ERROR_CODE_MAX_CHARS, message="m" * ERROR_MESSAGE_MAX_CHARS
    )
    assert (ERROR_CODE_MAX_CHARS, ERROR_MESSAGE_MAX_CHARS) == (100, 4000)


def test_an_error_with_empty_fields_reads_as_present_but_empty() -> None:
    for empty in ({}, {"code": "", "message": ""}, {"code": None, "message": None}):
        assert parse_generation(generation(error=empty)).error == GenerationError(None, None)
    # A code that is not a string is written as one.
    assert parse_generation(generation(error={"code": 504})).error == GenerationError("504", None)


def test_no_error_object_is_none() -> None:
    for odd in (None, "model_timeout", ["model_timeout"], 0):
        assert parse_generation(generation(error=odd)).error is None


def test_result_urls_fall_back_to_primary_url() -> None:
    def urls(result: Any) -> tuple[str, ...]:
        return parse_generation(generation(result=result)).result_urls

    assert urls({"primary_url": "https://x/1", "urls": []}) == ("https://x/1",)
    assert urls({"primary_url": "https://x/1", "urls": None}) == ("https://x/1",)
    assert urls({"primary_url": "https://x/1"}) == ("https://x/1",)
    assert urls({"primary_url": "https://x/1", "urls": ["a", "b"]}) == ("a", "b")


def test_result_urls_skip_what_is_not_a_url_string() -> None:
    def urls(result: Any) -> tuple[str, ...]:
        return parse_generation(generation(result=result)).result_urls

    assert urls({"urls": ["a", "", None, 3, {"url": "b"}, "c"]}) == ("a", "c")
    # Nothing usable in `urls`: primary_url stands in.
    assert urls({"primary_url": "p", "urls": ["", None]}) == ("p",)
    assert urls({"primary_url": "", "urls": []}) == ()
    assert urls({"primary_url": 5, "urls": []}) == ()
    for odd in (None, [], "https://x/1", ["https://x/1"]):
        assert urls(odd) == ()
    # `urls` that is not a list: nothing read from it (not one URL per character, no error).
    assert urls({"urls": "https://x/1"}) == ()
    assert urls({"primary_url": "p", "urls": 5}) == ("p",)
    assert parse_generation({"status": "failed", "result": {"urls": 5}}).result_urls == ()
    assert parse_generation({"status": "succeeded"}).result_urls == ()


def test_the_document_is_immutable() -> None:
    read = parse_generation(generation())
    with pytest.raises(FrozenInstanceError):
        read.status = "failed"  # type: ignore[misc]
