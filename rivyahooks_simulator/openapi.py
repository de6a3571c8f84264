"""The simulator's own OpenAPI description (hand-written; a test keeps it in step)."""

from __future__ import annotations

from typing import Any

from rivyahooks_protocol import contract


def _op(summary: str, scope: str | None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {"200": {"description": "OK"}}}
    op["security"] = [] if scope is None else [{"bearer": [scope]}]
    return op


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of the simulated API v1."""
    p = contract.API_PREFIX
    gens = p + contract.PATH_GENERATIONS
    hooks = p + contract.PATH_WEBHOOKS
    files = p + contract.PATH_FILES
    manage = "webhooks:manage"
    return {
        "openapi": "3.1.0",
        "info": {"title": "Rivya API (simulator)", "version": contract.API_VERSION},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            p + contract.PATH_MODELS: {"get": _op("List models", None)},
            p + contract.PATH_OPENAPI: {"get": _op("This document", None)},
            p + contract.PATH_CREDITS: {"get": _op("Current credits", "credits:read")},
            gens: {"post": _op("Create a generation", "generations:create")},
            gens + "/{task_id}": {"get": _op("Get a generation", "generations:read")},
            files: {"post": _op("Upload a reference file", "files:create")},
            files + "/{file_id}": {"get": _op("Get file metadata", "files:read")},
            hooks: {
                "get": _op("List webhook endpoints", manage),
                "post": _op("Create a webhook endpoint", manage),
            },
            hooks + "/{endpoint_id}": {
                "get": _op("Get a webhook endpoint", manage),
                "patch": _op("Update a webhook endpoint", manage),
                "delete": _op("Revoke a webhook endpoint", manage),
            },
            hooks + "/{endpoint_id}/rotate-secret": {"post": _op("Rotate the secret", manage)},
            hooks + "/{endpoint_id}/test": {"post": _op("Send a test event", manage)},
            hooks + "/{endpoint_id}/deliveries": {"get": _op("List delivery attempts", manage)},
            p + contract.EVENTS_LOG_PATH: {"get": _op("List emitted events", manage)},
        },
    }
