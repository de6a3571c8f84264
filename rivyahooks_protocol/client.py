"""The Rivya API v1 client: one method per endpoint, and the pager of the event log.

One `RivyaClient` per process or per task run: it owns an `httpx.Client` (a connection pool,
in its transport) and must be closed, best with `with RivyaClient(base_url, api_key) as
client:`. This package knows nothing of the service's settings; tasks.runtime builds the
client from them.

Safety properties the rest of the code relies on:

- the API key goes only to the API base: every path is built here from quoted segments (an
  id like "../x" or "https://evil" cannot change the target), and the transport never
  follows redirects, so a 3xx cannot carry the Authorization header to another host;
- the key never appears in `repr(client)`, in log records or in exception messages;
- only idempotent requests are retried by the client: GET and DELETE, and the POST that
  creates a generation because it always carries an Idempotency-Key.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from rivyahooks_protocol import contract
from rivyahooks_protocol.errors import RivyaInvalidId
from rivyahooks_protocol.timestamps import format_timestamp
from rivyahooks_protocol.transport import (
    DEFAULT_BACKOFF_BASE_SECONDS,
    JSON,
    MAX_SINGLE_WAIT_SECONDS,
    RivyaTransport,
)

log = logging.getLogger(__name__)


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
        for page in self.iter_pages():
            yield from page

    def iter_pages(self) -> Iterator[list[JSON]]:
        """Yield the log page by page, fetching the next only when the caller asks for it."""
        seen: set[str] = set()
        cursor: str | None = None
        while True:
            params = dict(self._params)
            if cursor is not None:
                params[contract.EVENTS_PARAM_STARTING_AFTER] = cursor
            page = self._client._get_json(contract.EVENTS_LOG_PATH, params=params)
            self.pages += 1
            data = page.get("data") or []
            self.events += len(data)
            if data:
                yield data
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
        self.base_url = base_url.rstrip("/")
        self._transport = RivyaTransport(
            self.base_url,
            api_key,
            timeout_seconds=timeout_seconds,
            max_attempts=max_attempts,
            backoff_base_seconds=backoff_base_seconds,
            max_wait_seconds=max_wait_seconds,
            transport=transport,
        )

    @property
    def max_attempts(self) -> int:
        """How many times a retried request is sent at most."""
        return self._transport.max_attempts

    @property
    def backoff_base_seconds(self) -> float:
        """The first wait between attempts, doubled per attempt."""
        return self._transport.backoff_base_seconds

    @property
    def max_wait_seconds(self) -> float:
        """The longest single wait between attempts, Retry-After included."""
        return self._transport.max_wait_seconds

    @property
    def last_response_date(self) -> datetime | None:
        """The Date header of the last response, for clock-skew checks (`rivya-hooks doctor`)."""
        return self._transport.last_response_date

    def __repr__(self) -> str:
        return f"RivyaClient(base_url={self.base_url!r})"

    def __enter__(self) -> RivyaClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._transport.close()

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
        return self._transport.request_json(
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
        return self._transport.request_json(
            "POST", contract.PATH_FILES, data=data, files={"file": (name, content)}, retry=False
        )

    # --- webhook endpoints ---------------------------------------------------------

    def create_webhook(self, name: str, url: str, event_types: list[str]) -> JSON:
        """Register an endpoint; the response holds `signing_secret`, shown only once."""
        body = {"name": name, "url": url, "event_types": list(event_types)}
        return self._transport.request_json(
            "POST", contract.PATH_WEBHOOKS, json_body=body, retry=False
        )

    def list_webhooks(self) -> JSON:
        """Return `{"object": "list", "data": [endpoint, ...]}`."""
        return self._get_json(contract.PATH_WEBHOOKS)

    def get_webhook(self, endpoint_id: str) -> JSON:
        """Return one endpoint object."""
        return self._get_json(f"{contract.PATH_WEBHOOKS}/{_segment(endpoint_id)}")

    def update_webhook(self, endpoint_id: str, **changes: Any) -> JSON:
        """Change an endpoint's name, url, event_types or status."""
        path = f"{contract.PATH_WEBHOOKS}/{_segment(endpoint_id)}"
        return self._transport.request_json("PATCH", path, json_body=changes, retry=False)

    def delete_webhook(self, endpoint_id: str) -> JSON:
        """Revoke an endpoint."""
        path = f"{contract.PATH_WEBHOOKS}/{_segment(endpoint_id)}"
        return self._transport.request_json("DELETE", path, retry=True)

    def rotate_webhook_secret(self, endpoint_id: str) -> JSON:
        """Rotate the signing secret; the new `signing_secret` is in the response, once."""
        path = f"{contract.PATH_WEBHOOKS}/{_segment(endpoint_id)}/rotate-secret"
        return self._transport.request_json("POST", path, retry=False)

    def send_test_event(self, endpoint_id: str) -> JSON:
        """Ask Rivya to send a test event to the endpoint."""
        path = f"{contract.PATH_WEBHOOKS}/{_segment(endpoint_id)}/test"
        return self._transport.request_json("POST", path, retry=False)

    def list_deliveries(self, endpoint_id: str) -> JSON:
        """Return the delivery attempts Rivya recorded for the endpoint."""
        return self._get_json(f"{contract.PATH_WEBHOOKS}/{_segment(endpoint_id)}/deliveries")

    # --- requests ------------------------------------------------------------------

    def _get_json(
        self, path: str, *, params: Mapping[str, str] | None = None, auth: bool = True
    ) -> JSON:
        return self._transport.request_json("GET", path, params=params, auth=auth, retry=True)
