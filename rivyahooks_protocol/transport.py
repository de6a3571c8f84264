"""The retrying HTTP transport under the Rivya client: send, wait, map errors, note the Date.

Safety properties the client relies on:

- redirects are never followed, so a 3xx cannot carry the Authorization header to another
  host;
- the key never appears in `repr(transport)`, in log records or in exception messages: an
  error body that echoes it is redacted;
- a request is retried only when its caller says it is idempotent (`retry=True`).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from rivyahooks_protocol import contract
from rivyahooks_protocol.backoff import backoff_seconds, parse_retry_after
from rivyahooks_protocol.errors import (
    RivyaError,
    RivyaNetworkError,
    RivyaProtocolError,
    class_for,
)

log = logging.getLogger(__name__)

JSON = dict[str, Any]

# A hostile or buggy Retry-After must not park a worker for hours.
MAX_SINGLE_WAIT_SECONDS = 60.0
DEFAULT_BACKOFF_BASE_SECONDS = 0.5
# An error body is read only for its envelope; a huge one is cut to this many bytes.
MAX_ERROR_BODY_CHARS = 2000


class RivyaTransport:
    """Requests to the Rivya API v1 base: typed errors, bounded retries, the server's Date."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_seconds: float,
        max_attempts: int,
        backoff_base_seconds: float,
        max_wait_seconds: float,
        transport: httpx.BaseTransport | None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.base_url = base_url
        self._api_key = api_key
        self.max_attempts = max_attempts
        self.backoff_base_seconds = backoff_base_seconds
        self.max_wait_seconds = max_wait_seconds
        # The Date header of the last response, for clock-skew checks (`rivya-hooks doctor`).
        self.last_response_date: datetime | None = None
        self._http = httpx.Client(
            base_url=self.base_url + contract.API_PREFIX,
            timeout=httpx.Timeout(timeout_seconds),
            follow_redirects=False,
            headers={"User-Agent": "rivya-hooks", "Accept": "application/json"},
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"RivyaTransport(base_url={self.base_url!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes]] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        retry: bool,
    ) -> JSON:
        """Send the request and return its JSON object body; raise a RivyaError if none."""
        response = self.send(
            method,
            path,
            params=params,
            json_body=json_body,
            data=data,
            files=files,
            headers=headers,
            auth=auth,
            retry=retry,
        )
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RivyaProtocolError(
                "invalid_response", "the response body is not JSON", status=response.status_code
            ) from None
        if not isinstance(body, dict):
            raise RivyaProtocolError(
                "invalid_response", "the response is not a JSON object", status=response.status_code
            )
        return body

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        json_body: Any,
        data: Mapping[str, str] | None,
        files: Mapping[str, tuple[str, bytes]] | None,
        headers: Mapping[str, str] | None,
        auth: bool,
        retry: bool,
    ) -> httpx.Response:
        """Send the request, retried if `retry` and the error allows; raise a RivyaError."""
        if not path.startswith("/"):
            raise ValueError("paths are relative to the API base and start with /")
        request_headers = dict(headers or {})
        if auth:
            if not self._api_key:
                raise RivyaError(
                    contract.ERROR_API_KEY_MISSING, "no API key configured (RIVYA_API_KEY)"
                )
            request_headers["Authorization"] = f"Bearer {self._api_key}"
        attempts = self.max_attempts if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                response = self._http.request(
                    method,
                    path,
                    params=params,
                    json=json_body,
                    data=data,
                    files=files,
                    headers=request_headers,
                )
            except httpx.TransportError as exc:
                error: RivyaError = RivyaNetworkError(
                    "network_error", f"{type(exc).__name__} calling {method} {path}"
                )
            else:
                self._remember_date(response)
                if response.is_success:
                    return response
                error = self._error_from(response)
            if not error.retryable or attempt == attempts:
                raise error
            wait = self._wait_before(attempt + 1, error.retry_after)
            log.warning(
                "rivya %s %s failed (%s); attempt %d of %d in %.2fs",
                method,
                path,
                error.code,
                attempt + 1,
                attempts,
                wait,
            )
            time.sleep(wait)
        raise AssertionError("unreachable: the loop returns or raises")

    def _wait_before(self, attempt: int, retry_after: float | None) -> float:
        # A step past the cap clips to it: max_wait_seconds bounds each wait, whatever the
        # attempt, and Retry-After is a lower bound below it.
        return backoff_seconds(
            attempt - 1,
            retry_after,
            base_seconds=self.backoff_base_seconds,
            max_seconds=self.max_wait_seconds,
            clip_at_cap=True,
        )

    def _remember_date(self, response: httpx.Response) -> None:
        value = response.headers.get("Date")
        if value:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                self.last_response_date = email.utils.parsedate_to_datetime(value)

    def _error_from(self, response: httpx.Response) -> RivyaError:
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if 300 <= status < 400:
            return RivyaProtocolError(
                "unexpected_redirect", "the API answered with a redirect", status=status
            )
        code: str | None = None
        message = ""
        request_id: str | None = None
        try:
            envelope = response.json().get("error")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            envelope = None
        if isinstance(envelope, dict):
            code = envelope.get("code") if isinstance(envelope.get("code"), str) else None
            message = str(envelope.get("message") or "")
            raw_id = envelope.get(contract.ERROR_REQUEST_ID_KEY)
            request_id = raw_id if isinstance(raw_id, str) else None
        if not message:
            message = response.reason_phrase or "error"
        message = message[:MAX_ERROR_BODY_CHARS]
        if self._api_key:
            # Servers sometimes echo what they received; the key must not travel on in logs.
            message = message.replace(self._api_key, "[redacted]")
        cls = class_for(code, status)
        return cls(
            code or f"http_{status}",
            message,
            status=status,
            request_id=request_id or response.headers.get("X-Request-Id"),
            retry_after=retry_after,
        )
