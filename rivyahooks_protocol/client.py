"""The Rivya API v1 client.

One `RivyaClient` per process or per task run: it owns an `httpx.Client` (a connection pool)
and must be closed, best with `with RivyaClient(base_url, api_key) as client:`. This package
knows nothing of the service's settings; tasks.runtime builds the client from them.

Safety properties the rest of the code relies on:

- the API key goes only to the API base: every path is built here from quoted segments (an
  id like "../x" or "https://evil" cannot change the target), and redirects are never
  followed, so a 3xx cannot carry the Authorization header to another host;
- the key never appears in `repr(client)`, in log records or in exception messages;
- only idempotent requests are retried by the client: GET and DELETE, and the POST that
  creates a generation because it always carries an Idempotency-Key.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from rivyahooks_protocol import contract
from rivyahooks_protocol.backoff import backoff_seconds, parse_retry_after
from rivyahooks_protocol.errors import (
    RivyaError,
    RivyaInvalidId,
    RivyaNetworkError,
    RivyaProtocolError,
    class_for,
)
from rivyahooks_protocol.timestamps import format_timestamp

log = logging.getLogger(__name__)

JSON = dict[str, Any]

# A hostile or buggy Retry-After must not park a worker for hours.
MAX_SINGLE_WAIT_SECONDS = 60.0
DEFAULT_BACKOFF_BASE_SECONDS = 0.5
# An error body is read only for its envelope; a huge one is cut to this many bytes.
MAX_ERROR_BODY_CHARS = 2000


def _segment(value: str) -> str:
    # Ids become one path segment: "/", "..", "?" and "#" are quoted, never interpreted.
    if not value or value in (".", ".."):
        raise RivyaInvalidId(
            "invalid_id", f"invalid id {value!r}: it cannot name a Rivya resource in a URL"
        )
    return quote(value, safe="")


class EventPager:
    """Iterate over the event log across pages; `.pages` and `.events` count what was read.

    Paging stops when a page says `has_more: false`, when a page is empty, or when the
    cursor for the next page was already used (a server bug would otherwise loop forever).
    """

    def __init__(self, client: RivyaClient, params: Mapping[str, str]) -> None:
        self._client = client
        self._params = dict(params)
        self.pages = 0
        self.events = 0
        self.stopped_on: str | None = None  # "has_more", "empty_page" or "repeated_cursor"

    def __iter__(self) -> Iterator[JSON]:
        seen: set[str] = set()
        cursor: str | None = None
        while True:
            params = dict(self._params)
            if cursor is not None:
                params[contract.EVENTS_PARAM_STARTING_AFTER] = cursor
            page = self._client._get_json(contract.EVENTS_LOG_PATH, params=params)
            self.pages += 1
            data = page.get("data") or []
            for event in data:
                self.events += 1
                yield event
            if not data:
                self.stopped_on = "empty_page"
                return
            if not page.get("has_more", False):
                self.stopped_on = "has_more"
                return
            cursor = str(data[-1].get("id", ""))
            if not cursor or cursor in seen:
                self.stopped_on = "repeated_cursor"
                log.warning("event log repeated cursor %r; stopping", cursor)
                return
            seen.add(cursor)


class RivyaClient:
    """A client of the Rivya API v1 with typed errors and bounded retries."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_seconds: float = 10.0,
        max_attempts: int = 5,
        backoff_base_seconds: float = DEFAULT_BACKOFF_BASE_SECONDS,
        max_wait_seconds: float = MAX_SINGLE_WAIT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.base_url = base_url.rstrip("/")
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
        return f"RivyaClient(base_url={self.base_url!r})"

    def __enter__(self) -> RivyaClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # --- generations ---------------------------------------------------------------

    def get_generation(self, task_id: str) -> JSON:
        """Return the generation object of `task_id`."""
        return self._get_json(f"{contract.PATH_GENERATIONS}/{_segment(task_id)}")

    def create_generation(
        self,
        model: str,
        prompt: str | None = None,
        params: Mapping[str, Any] | None = None,
        client_request_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> JSON:
        """Submit a generation; retried safely because it carries an Idempotency-Key.

        Pass your own `idempotency_key` (e.g. derived from your job id) to make retries
        across processes safe too; a fresh one is made per call otherwise.
        """
        body: JSON = {"model": model}
        if prompt is not None:
            body["prompt"] = prompt
        if params is not None:
            body["params"] = dict(params)
        if client_request_id is not None:
            body["client_request_id"] = client_request_id
        key = idempotency_key or str(uuid.uuid4())
        return self._json(
            "POST",
            contract.PATH_GENERATIONS,
            json_body=body,
            headers={contract.IDEMPOTENCY_KEY_HEADER: key},
            retry=True,
        )

    # --- event log -----------------------------------------------------------------

    def iter_webhook_events(
        self,
        created_after: datetime | None = None,
        type: str | None = None,
        limit: int = contract.EVENTS_PAGE_LIMIT_MAX,
    ) -> EventPager:
        """Return an iterable over the event log, newest first, across all pages."""
        if not 1 <= limit <= contract.EVENTS_PAGE_LIMIT_MAX:
            raise ValueError(f"limit must be 1..{contract.EVENTS_PAGE_LIMIT_MAX}")
        params = {contract.EVENTS_PARAM_LIMIT: str(limit)}
        if created_after is not None:
            params[contract.EVENTS_PARAM_CREATED_AFTER] = format_timestamp(created_after)
        if type is not None:
            params[contract.EVENTS_PARAM_TYPE] = type
        return EventPager(self, params)

    # --- account, models, files ----------------------------------------------------

    def credits(self) -> JSON:
        """Return `{"current_credits": number, ...}`."""
        return self._get_json(contract.PATH_CREDITS)

    def credits_with_date(self) -> tuple[JSON, datetime | None]:
        """Return the credits and the server's Date header (for a clock-skew check)."""
        body = self.credits()
        return body, self.last_response_date

    def models(self) -> JSON:
        """Return the model list; needs no key."""
        return self._get_json(contract.PATH_MODELS, auth=False)

    def get_file(self, file_id: str) -> JSON:
        """Return the metadata of an uploaded reference file."""
        return self._get_json(f"{contract.PATH_FILES}/{_segment(file_id)}")

    def upload_file(
        self,
        file: Path | bytes,
        kind: str,
        model: str | None = None,
        client_request_id: str | None = None,
        filename: str | None = None,
    ) -> JSON:
        """Upload a reference input file (not retried: an upload is not idempotent)."""
        if kind not in contract.FILE_KINDS:
            raise ValueError(f"kind must be one of {contract.FILE_KINDS}")
        if isinstance(file, Path):
            content = file.read_bytes()
            name = filename or file.name
        else:
            content = file
            name = filename or f"upload.{kind}"
        data = {"kind": kind}
        if model is not None:
            data["model"] = model
        if client_request_id is not None:
            data["client_request_id"] = client_request_id
        return self._json(
            "POST", contract.PATH_FILES, data=data, files={"file": (name, content)}, retry=False
        )

    # --- webhook endpoints ---------------------------------------------------------

    def create_webhook(self, name: str, url: str, event_types: list[str]) -> JSON:
        """Register an endpoint; the response holds `signing_secret`, shown only once."""
        body = {"name": name, "url": url, "event_types": list(event_types)}
        return self._json("POST", contract.PATH_WEBHOOKS, json_body=body, retry=False)

    def list_webhooks(self) -> JSON:
        """Return `{"object": "list", "data": [endpoint, ...]}`."""
        return self._get_json(contract.PATH_WEBHOOKS)

    def get_webhook(self, endpoint_id: str) -> JSON:
        """Return one endpoint object."""
        return self._get_json(f"{contract.PATH_WEBHOOKS}/{_segment(endpoint_id)}")

    def update_webhook(self, endpoint_id: str, **changes: Any) -> JSON:
        """Change an endpoint's name, url, event_types or status."""
        path = f"{contract.PATH_WEBHOOKS}/{_segment(endpoint_id)}"
        return self._json("PATCH", path, json_body=changes, retry=False)

    def delete_webhook(self, endpoint_id: str) -> JSON:
        """Revoke an endpoint."""
        path = f"{contract.PATH_WEBHOOKS}/{_segment(endpoint_id)}"
        return self._json("DELETE", path, retry=True)

    def rotate_webhook_secret(self, endpoint_id: str) -> JSON:
        """Rotate the signing secret; the new `signing_secret` is in the response, once."""
        path = f"{contract.PATH_WEBHOOKS}/{_segment(endpoint_id)}/rotate-secret"
        return self._json("POST", path, retry=False)

    def send_test_event(self, endpoint_id: str) -> JSON:
        """Ask Rivya to send a test event to the endpoint."""
        path = f"{contract.PATH_WEBHOOKS}/{_segment(endpoint_id)}/test"
        return self._json("POST", path, retry=False)

    def list_deliveries(self, endpoint_id: str) -> JSON:
        """Return the delivery attempts Rivya recorded for the endpoint."""
        return self._get_json(f"{contract.PATH_WEBHOOKS}/{_segment(endpoint_id)}/deliveries")

    # --- transport -----------------------------------------------------------------

    def _get_json(
        self, path: str, *, params: Mapping[str, str] | None = None, auth: bool = True
    ) -> JSON:
        return self._json("GET", path, params=params, auth=auth, retry=True)

    def _json(
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
        response = self._send(
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

    def _send(
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
