"""Rivya's generation object, read once and leniently into a typed, immutable document.

Rivya is a remote party: a field of the wrong type or an unreadable time is read as absent,
never as a crash, so one odd generation cannot stop the worker. What a field means for our
rows (terminal states, ordering, anomalies) is the worker's business, not this module's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rivyahooks_protocol import contract
from rivyahooks_protocol.timestamps import lenient_timestamp

# Rivya's error fields are free text; longer ones are cut to what is worth keeping.
ERROR_CODE_MAX_CHARS = 100
ERROR_MESSAGE_MAX_CHARS = 4000


@dataclass(frozen=True)
class GenerationError:
    """The `error` object of a generation; either field may be missing."""

    code: str | None
    message: str | None


@dataclass(frozen=True)
class GenerationDocument:
    """What Rivya says about one generation, as far as this service reads it."""

    status: str | None  # one of contract.GENERATION_STATUSES; None if Rivya sent another
    reported_status: Any  # the status as Rivya sent it, to name an unknown one
    model: str | None
    reserved_credits: float | None
    final_credits: float | None
    created_at: datetime | None
    updated_at: datetime | None
    error: GenerationError | None  # None when Rivya sent no error object
    result_urls: tuple[str, ...]  # `urls` when filled, else `primary_url`; may be empty


def parse_generation(document: Mapping[str, Any]) -> GenerationDocument:
    """Read Rivya's generation object; fields absent or of the wrong type read as None."""
    reported = document.get("status")
    status = str(reported)
    model = document.get("model")
    return GenerationDocument(
        status=status if status in contract.GENERATION_STATUSES else None,
        reported_status=reported,
        model=model if isinstance(model, str) else None,
        reserved_credits=_number(document.get("reserved_credits")),
        final_credits=_number(document.get("final_credits")),
        created_at=lenient_timestamp(document.get("created_at")),
        updated_at=lenient_timestamp(document.get("updated_at")),
        error=_error(document.get("error")),
        result_urls=_result_urls(document.get("result")),
    )


def _number(value: Any) -> float | None:
    # JSON true and false are bools, and Python's bools are ints: neither is a credit count.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _error(error: Any) -> GenerationError | None:
    if not isinstance(error, dict):
        return None
    return GenerationError(
        code=str(error.get("code"))[:ERROR_CODE_MAX_CHARS] if error.get("code") else None,
        message=str(error.get("message") or "")[:ERROR_MESSAGE_MAX_CHARS] or None,
    )


def _result_urls(result: Any) -> tuple[str, ...]:
    if not isinstance(result, dict):
        return ()
    listed = result.get("urls")
    # Only a list is a list of URLs: a string would be read one character at a time, and a
    # number would stop the parse of a document whose status needs no URL at all.
    urls = [u for u in listed if isinstance(u, str) and u] if isinstance(listed, list) else []
    if not urls and isinstance(result.get("primary_url"), str) and result["primary_url"]:
        urls = [result["primary_url"]]
    return tuple(urls)
