"""The result record: what apps are told about a generation, by the API, the feed and webhooks.

One document everywhere: the results API and its feed serve it, and outbound messages carry
it as their `data`, so an app parses one shape however a result reaches it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field

from models.generations import Generation, GenerationStatus

Status = Literal["queued", "processing", "succeeded", "failed"]
assert set(Status.__args__) == {status.value for status in GenerationStatus}  # type: ignore[attr-defined]
# The name a file endpoint offers for an output (storage.download_name).
FileName = Callable[[str, int, str | None], str]


class GenerationError(BaseModel):
    code: str | None
    message: str | None


class OutputDocument(BaseModel):
    index: int = Field(description="Position in Rivya's result URLs, from 0.")
    content_type: str | None
    size_bytes: int
    sha256: str = Field(description="Hex sha256 of the bytes; also the file's ETag.")
    filename: str = Field(description="The name the file endpoint offers.")
    url: str = Field(description="Path of the file endpoint for this output.")
    storage_key: str = Field(description="Key under STORAGE_URL.")
    stored_at: dt.datetime


class GenerationDocument(BaseModel):
    task_id: str
    model: str | None
    status: Status
    reserved_credits: float | None
    final_credits: float | None
    error: GenerationError | None
    anomaly: str | None = Field(description="Set when Rivya's answer made no sense.")
    created_at: dt.datetime = Field(description="Rivya's creation time, else first seen here.")
    submitted_at: dt.datetime | None = Field(description="When `rivya-hooks submit` made it.")
    finished_at: dt.datetime | None = Field(description="When it became succeeded or failed.")
    results_stored_at: dt.datetime | None = Field(description="When every output was stored.")
    updated_at: dt.datetime | None = Field(description="Rivya's last update time.")
    outputs: list[OutputDocument]


def output_path(task_id: str, index: int) -> str:
    """Return the results API's path of one stored output."""
    return f"/results/{quote(task_id, safe='')}/outputs/{index}"


def result_document(
    generation: Generation,
    file_name: FileName,
    model: type[GenerationDocument] = GenerationDocument,
    *,
    base_url: str = "",
    **extra: Any,
) -> GenerationDocument:
    """Return the generation's record; output URLs start with `base_url` (empty: a path)."""
    return model(
        task_id=generation.task_id,
        model=generation.model,
        status=generation.status.value,
        reserved_credits=generation.reserved_credits,
        final_credits=generation.final_credits,
        error=(
            GenerationError(code=generation.error_code, message=generation.error_message)
            if generation.error_code or generation.error_message
            else None
        ),
        anomaly=generation.anomaly,
        created_at=generation.rivya_created_at or generation.first_seen_at,
        submitted_at=generation.submitted_at,
        finished_at=generation.finished_at,
        results_stored_at=generation.results_stored_at,
        updated_at=generation.rivya_updated_at,
        outputs=[
            OutputDocument(
                index=output.index,
                content_type=output.content_type,
                size_bytes=output.size_bytes,
                sha256=output.sha256,
                filename=file_name(output.task_id, output.index, output.content_type),
                url=base_url + output_path(output.task_id, output.index),
                storage_key=output.storage_key,
                stored_at=output.stored_at,
            )
            for output in generation.outputs
        ],
        **extra,
    )
