"""The models the simulator offers, one per category and one that cannot be used."""

from __future__ import annotations

from typing import Any

MODELS: tuple[dict[str, Any], ...] = (
    {
        "id": "rivya-image-1",
        "object": "model",
        "display_name": "Rivya Image 1",
        "category": "image",
        "base_credits": 4,
        "api_status": "available",
    },
    {
        "id": "rivya-video-1",
        "object": "model",
        "display_name": "Rivya Video 1",
        "category": "video",
        "base_credits": 40,
        "api_status": "available",
    },
    {
        "id": "rivya-audio-1",
        "object": "model",
        "display_name": "Rivya Audio 1",
        "category": "audio",
        "base_credits": 8,
        "api_status": "available",
    },
    {
        "id": "rivya-image-2",
        "object": "model",
        "display_name": "Rivya Image 2",
        "category": "image",
        "base_credits": 10,
        "api_status": "coming_soon",
    },
)

MODELS_BY_ID = {model["id"]: model for model in MODELS}
DEFAULT_MODEL = "rivya-image-1"

CONTENT_TYPES = {"image": "image/png", "video": "video/mp4", "audio": "audio/mpeg"}

# Failure codes a failed generation may carry.
FAILURE_CODES = {
    "content_policy": "The prompt was rejected by the content policy.",
    "model_timeout": "The model did not finish in time.",
    "internal_error": "The generation failed unexpectedly.",
}
