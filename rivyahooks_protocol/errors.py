"""Typed errors of the Rivya API client and of result downloads.

Every error carries `retryable`: True when the same call may succeed later without any
change (rate limits, outages, network trouble), False when retrying cannot help. Messages
never contain the API key: they are built from the status, the error code and the server's
message only, and the client scrubs the key out of the server's message as well.
"""

from __future__ import annotations

from rivyahooks_protocol import contract


class RivyaError(Exception):
    """An API call failed; branch on `code` (Rivya's error code) and `retryable`."""

    retryable_by_default = False

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id
        self.retryable = self.retryable_by_default if retryable is None else retryable
        # Seconds the server asked us to wait (Retry-After), when it said so.
        self.retry_after = retry_after
        super().__init__(self._describe())

    def _describe(self) -> str:
        status = "no response" if self.status is None else f"HTTP {self.status}"
        text = f"{self.code} ({status}): {self.message}"
        if self.request_id:
            text += f" [requestId {self.request_id}]"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, "
            f"request_id={self.request_id!r}, retryable={self.retryable!r})"
        )


class RivyaAuthError(RivyaError):
    """The API key is missing, invalid, revoked or expired, or lacks a scope."""


class RivyaNotFound(RivyaError):
    """The object does not exist (or belongs to another account)."""


class RivyaInvalidId(RivyaError, ValueError):
    """An id given to the client cannot be put in a URL ("", ".", ".."); nothing was sent."""


class RivyaValidationError(RivyaError):
    """Rivya rejected the request's content."""


class RivyaIdempotencyConflict(RivyaError):
    """The Idempotency-Key was already used with a different request body."""


class RivyaInsufficientCredits(RivyaError):
    """The account has not enough credits for the generation."""


class RivyaRateLimited(RivyaError):
    """Too many requests; wait `retry_after` seconds when given."""

    retryable_by_default = True


class RivyaUnavailable(RivyaError):
    """Rivya answered with a server error (5xx); the call may succeed later."""

    retryable_by_default = True


class RivyaNetworkError(RivyaError):
    """No usable response: connection refused or reset, timeout, broken HTTP."""

    retryable_by_default = True


class RivyaProtocolError(RivyaError):
    """The response did not follow the contract (a redirect, a non-JSON success body)."""


# --- result downloads ------------------------------------------------------------------


class DownloadError(Exception):
    """A result download failed; `retryable` tells whether trying the same URL again helps."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class DisallowedURLError(DownloadError):
    """The URL breaks the download policy (scheme, host or address); nothing was sent."""


class ResultExpiredError(DownloadError):
    """The result URL has expired: re-fetch the generation for fresh URLs, then retry."""


class DownloadTooLargeError(DownloadError):
    """The result is larger than the configured maximum."""


class DownloadFailedError(DownloadError):
    """The server answered with a status that retrying cannot fix (a redirect, a 4xx)."""


class DownloadIncompleteError(DownloadError):
    """Fewer bytes arrived than announced, or the connection dropped mid-body."""

    retryable = True


class DownloadTransientError(DownloadError):
    """A network error, 5xx or 429; `retry_after` holds the server's hint in seconds."""

    retryable = True

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


# The class for an error code we know, whatever its HTTP status.
CODE_CLASSES: dict[str, type[RivyaError]] = {
    **dict.fromkeys(contract.AUTH_ERROR_CODES, RivyaAuthError),
    contract.ERROR_SCOPE_DENIED: RivyaAuthError,
    contract.ERROR_NOT_FOUND: RivyaNotFound,
    contract.ERROR_VALIDATION_FAILED: RivyaValidationError,
    contract.ERROR_WEBHOOK_URL_REJECTED: RivyaValidationError,
    contract.ERROR_IDEMPOTENCY_CONFLICT: RivyaIdempotencyConflict,
    contract.ERROR_INSUFFICIENT_CREDITS: RivyaInsufficientCredits,
    contract.ERROR_RATE_LIMITED: RivyaRateLimited,
    contract.ERROR_PUBLIC_API_DISABLED: RivyaUnavailable,
}


def class_for(code: str | None, status: int) -> type[RivyaError]:
    """Return the error class for a response: by error code first, then by HTTP status."""
    if code is not None and code in CODE_CLASSES:
        return CODE_CLASSES[code]
    if status == 429:
        return RivyaRateLimited
    if status >= 500:
        return RivyaUnavailable
    if status in (401, 403):
        return RivyaAuthError
    # A 404 without Rivya's not_found code is not proof that the object does not exist: it
    # may come from a proxy or a wrong base URL. It stays a plain, permanent RivyaError.
    if status == 409:
        return RivyaIdempotencyConflict if code is None else RivyaError
    if status in (400, 422):
        return RivyaValidationError
    return RivyaError
