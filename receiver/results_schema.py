"""The results API's schema: the models its answers and queries follow, and its OpenAPI.

spectree builds the OpenAPI 3.1 document (GET /openapi.json) from these pydantic models and
the routes that use them, and validates each request's query against them; nothing is
written twice. The webhook endpoint is Rivya's contract, not ours, and stays out of the
document.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from flask import Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from spectree import SecurityScheme, SecuritySchemeData, SpecTree
from spectree.models import SecureType

from models.result_documents import GenerationDocument, Status

MAX_POSITION = 2**63 - 1


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable reason; branch on this.")
    message: str | None = Field(None, description="What went wrong, for people.")


class ErrorBody(BaseModel):
    """Every error answer of this API."""

    error: ErrorDetail


class FeedEntry(GenerationDocument):
    cursor: str = Field(description="Ask `after` this to continue behind this entry.")


class FeedPage(BaseModel):
    object: Literal["list"]
    data: list[FeedEntry]
    next_cursor: str = Field(description="Store it; pass it as `after` next time.")
    has_more: bool = Field(description="More entries are ready now: ask again at once.")


class ListPage(BaseModel):
    object: Literal["list"]
    data: list[GenerationDocument]
    next_before: int | None = Field(description="Pass as `before` for the next page.")
    has_more: bool


class Strict(BaseModel):
    # An unknown or misspelt parameter is an error, never silently ignored.
    model_config = ConfigDict(extra="forbid")


class FeedQuery(Strict):
    after: str = Field(
        "",
        pattern=r"^[0-9]{0,19}$",
        description="A `next_cursor` or an entry's `cursor`; empty: from the beginning.",
    )
    limit: int = Field(100, ge=1, le=1000)
    wait: int = Field(
        0, ge=0, le=30, description="Seconds to wait for a change when none is ready."
    )

    @field_validator("after")
    @classmethod
    def _in_range(cls, value: str) -> str:
        if value and int(value) > MAX_POSITION:
            raise ValueError("not a cursor this API gave")
        return value


class ListQuery(Strict):
    status: Status | None = None
    before: int | None = Field(
        None, ge=1, le=MAX_POSITION, description="A `next_before`: the page after it."
    )
    since: AwareDatetime | None = Field(
        None, description="Only generations created at or after this time (with a zone)."
    )
    limit: int = Field(100, ge=1, le=1000)


def _validation_answer(
    _request: Request, response: Response | None, error: Any, _instance: Any, _adapter: Any
) -> None:
    """Turn spectree's answer to an invalid query into our error envelope."""
    if error is None or response is None:
        return
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "query")
        problems.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
    body = {"error": {"code": "invalid_parameter", "message": "; ".join(problems)[:1000]}}
    response.set_data(json.dumps(body))
    response.mimetype = "application/json"


api = SpecTree(
    "flask",
    title="rivya-hooks results API",
    version="1",
    mode="strict",
    description=(
        "Generations and their stored files, for downstream apps. Every answer but a file "
        "is JSON; every error is the `ErrorBody` envelope."
    ),
    security_schemes=[
        SecurityScheme(
            name="bearer", data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer")
        )
    ],
    security={"bearer": []},
    validation_error_status=400,
    validation_error_model=ErrorBody,
    before=_validation_answer,
    annotations=False,
    # Plain model names: the document is read by people and code generators.
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
)
