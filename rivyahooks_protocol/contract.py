"""The Rivya API v1 contract, as far as this project depends on it.

Every fact here that is marked ASSUMED was not visible in Rivya's published docs; it is this
project's chosen default. The receiver, the client, the processing code and the simulator all
read these names from here, so that when the live contract is known only this module changes.
"""

from __future__ import annotations

import re
from typing import Final

# --- confirmed -------------------------------------------------------------------------

API_PREFIX: Final = "/api/v1"
DEFAULT_API_BASE: Final = "https://rivya.ai"
API_VERSION: Final = "2026-05-11"

GENERATION_STATUSES: Final = ("queued", "processing", "succeeded", "failed")
# [assumed] A task id is "task_..." by the documentation's example; its alphabet is not
# documented, so only what no id can need is refused: whitespace, control characters,
# non-ASCII, and more than the 255 characters our columns hold. Matched whole.
TASK_ID_PATTERN: Final = re.compile(r"[!-~]{1,255}")
TERMINAL_GENERATION_STATUSES: Final = frozenset({"succeeded", "failed"})

EVENT_GENERATION_SUCCEEDED: Final = "generation.succeeded"
EVENT_GENERATION_FAILED: Final = "generation.failed"
EVENT_TYPES: Final = frozenset({EVENT_GENERATION_SUCCEEDED, EVENT_GENERATION_FAILED})

SCOPES: Final = (
    "models:read",
    "generations:create",
    "generations:read",
    "files:create",
    "files:read",
    "credits:read",
    "webhooks:manage",
    "chat:create",
    "chat:read",
)

# Error codes we branch on; any other code is classified by its HTTP status.
ERROR_NOT_FOUND: Final = "not_found"
ERROR_RATE_LIMITED: Final = "rate_limited"
ERROR_IDEMPOTENCY_CONFLICT: Final = "idempotency_conflict"
ERROR_VALIDATION_FAILED: Final = "validation_failed"

SIGNING_SECRET_PREFIX: Final = "whsec_"  # noqa: S105 (a prefix, not a secret)

# --- assumed: the event envelope ------------------------------------------------------

# ASSUMED: after the confirmed "id", "type", "api_version", "created_at", the envelope has
# "object": "event" and "data": <generation object>.
EVENT_OBJECT: Final = "event"
EVENT_DATA_KEY: Final = "data"
# ASSUMED: the task id of the generation is data.id.
EVENT_TASK_ID_KEY: Final = "id"

# --- assumed: signature schemes --------------------------------------------------------

SCHEME_STANDARD: Final = "standard"
SCHEME_TIMESTAMPED_HMAC: Final = "timestamped-hmac"
SCHEMES: Final = (SCHEME_STANDARD, SCHEME_TIMESTAMPED_HMAC)

# ASSUMED "standard" = Standard Webhooks v1.
STANDARD_ID_HEADER: Final = "webhook-id"
STANDARD_TIMESTAMP_HEADER: Final = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER: Final = "webhook-signature"
STANDARD_SIGNATURE_VERSION: Final = "v1"
# [confirmed by the Standard Webhooks spec; Rivya signs with v1 today] The asymmetric entry:
# an ed25519 signature of the same content, checked against `whpk_` public keys.
STANDARD_ASYMMETRIC_VERSION: Final = "v1a"
PUBLIC_KEY_PREFIX: Final = "whpk_"
ED25519_PUBLIC_KEY_BYTES: Final = 32
ED25519_SIGNATURE_BYTES: Final = 64

# ASSUMED "timestamped-hmac" = Stripe style.
TIMESTAMPED_SIGNATURE_HEADER: Final = "Rivya-Signature"
TIMESTAMPED_SIGNATURE_VERSION: Final = "v1"

DEFAULT_TOLERANCE_SECONDS: Final = 300

# Headers kept with a stored delivery (lower-case). The signature is kept on purpose: it is
# not a secret, and an operator re-verifying a stored delivery needs it.
STORED_DELIVERY_HEADERS: Final = frozenset(
    {
        "content-type",
        "content-length",
        "user-agent",
        STANDARD_ID_HEADER,
        STANDARD_TIMESTAMP_HEADER,
        STANDARD_SIGNATURE_HEADER,
        TIMESTAMPED_SIGNATURE_HEADER.lower(),
    }
)

# --- assumed: result URLs -------------------------------------------------------------

# ASSUMED: an expired result URL answers one of these; re-fetch the generation for fresh URLs.
EXPIRED_URL_STATUSES: Final = frozenset({403, 404, 410})

# --- assumed: rate limiting -----------------------------------------------------------

# ASSUMED: 429 and 503 may carry Retry-After (seconds or an HTTP date).
RETRY_AFTER_STATUSES: Final = frozenset({429, 503})

# --- assumed: the event log -----------------------------------------------------------

EVENTS_LOG_PATH: Final = "/webhook-events"
EVENTS_PAGE_LIMIT_MAX: Final = 100
EVENTS_PAGE_LIMIT_DEFAULT: Final = 20
EVENTS_RETENTION_DAYS: Final = 30
# Query parameter names of the event log.
EVENTS_PARAM_LIMIT: Final = "limit"
EVENTS_PARAM_STARTING_AFTER: Final = "starting_after"
EVENTS_PARAM_CREATED_AFTER: Final = "created_after"
EVENTS_PARAM_TYPE: Final = "type"
DELIVERY_STATUSES: Final = ("pending", "delivered", "failed")

# --- assumed: delivery ----------------------------------------------------------------

# ASSUMED: retries on non-2xx or timeout for up to 3 days.
DELIVERY_RETRY_WINDOW_SECONDS: Final = 3 * 24 * 3600

# --- confirmed: routes, headers, error codes, file limits ----------------------------

PATH_MODELS: Final = "/models"
PATH_GENERATIONS: Final = "/generations"
PATH_FILES: Final = "/files"
PATH_CREDITS: Final = "/credits"
PATH_WEBHOOKS: Final = "/webhooks"
PATH_OPENAPI: Final = "/openapi.json"

IDEMPOTENCY_KEY_HEADER: Final = "Idempotency-Key"
ERROR_REQUEST_ID_KEY: Final = "requestId"  # camelCase, unlike every other field

ERROR_API_KEY_MISSING: Final = "api_key_missing"
ERROR_API_KEY_INVALID: Final = "api_key_invalid"
ERROR_API_KEY_REVOKED: Final = "api_key_revoked"
ERROR_API_KEY_EXPIRED: Final = "api_key_expired"
AUTH_ERROR_CODES: Final = frozenset(
    {ERROR_API_KEY_MISSING, ERROR_API_KEY_INVALID, ERROR_API_KEY_REVOKED, ERROR_API_KEY_EXPIRED}
)
ERROR_SCOPE_DENIED: Final = "api_scope_denied"
ERROR_PUBLIC_API_DISABLED: Final = "public_api_disabled"
ERROR_WEBHOOK_URL_REJECTED: Final = "webhook_url_rejected"
ERROR_INSUFFICIENT_CREDITS: Final = "insufficient_credits"
# ASSUMED: the HTTP status of insufficient_credits was not seen; 402 is our choice.
INSUFFICIENT_CREDITS_STATUS: Final = 402

FILE_KINDS: Final = ("image", "video", "audio")
# ASSUMED: "10 MB" read as 10**6-byte megabytes, the stricter reading.
FILE_SIZE_LIMITS: Final = {"image": 10_000_000, "video": 50_000_000, "audio": 10_000_000}

MODEL_API_STATUSES: Final = ("available", "coming_soon", "studio_only")
WEBHOOK_ENDPOINT_OBJECT: Final = "webhook_endpoint"
