"""POST /webhooks/rivya: verify the raw bytes, parse, then store and answer in one round trip.

The receiver never talks to the broker. It commits the event `received` with one statement
(which on PostgreSQL also wakes the relay) and answers; the relay publishes it. Its only
dependency is the database.
"""

from __future__ import annotations

import hashlib
import logging

from flask import Blueprint, Response, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from models.events import EventSource, EventStatus
from models.inbox import event_row
from receiver.responses import json_answer, json_error
from receiver.state import state
from rivyahooks_foundation.faultpoints import reach
from rivyahooks_foundation.logconfig import bind_contextvars
from rivyahooks_foundation.metrics.web import DELIVERED, DELIVERY_DURATION, SIGNATURE_FAILURES
from rivyahooks_foundation.tracing import annotate, context_headers, traced
from rivyahooks_protocol import contract
from rivyahooks_protocol.envelope import parse_envelope
from rivyahooks_protocol.signatures import SignatureError

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

# How long Rivya should wait before retrying when our database is down.
DATABASE_DOWN_RETRY_AFTER_SECONDS = 30
MAX_STORED_HEADER_CHARS = 4096


def _read_body(limit: int) -> bytes:
    # Refuse by the declared length before reading a byte. A chunked body is read up to
    # MAX_CONTENT_LENGTH, one byte more than the limit: getting that byte means it was too
    # large (a cut-off body would otherwise fail verification as a 401 Rivya cannot explain).
    length = request.content_length
    if length is not None:
        if length > limit:
            raise RequestEntityTooLarge()
        # Straight from the server's stream, which ends at the declared length: werkzeug's
        # limited stream around it costs more than the read itself.
        body: bytes = request.environ["wsgi.input"].read(length)
        if len(body) < length:
            raise ClientDisconnected()  # what werkzeug's stream says of a short body
        return body
    body = request.get_data(cache=False)
    if len(body) > limit:
        raise RequestEntityTooLarge()
    return body


# Headers the WSGI environ names without the HTTP_ prefix (PEP 3333, CGI's names).
_CGI_HEADERS = frozenset({"content-type", "content-length"})


def _environ_key(name: str) -> str:
    key = name.upper().replace("-", "_")
    return key if name in _CGI_HEADERS else "HTTP_" + key


# The headers a delivery is stored with, which include every header a signature scheme
# reads: looked up by name in the environ, instead of copying every header of the request
# into a mapping to pick a few of them.
_DELIVERY_HEADERS = tuple(
    (name, _environ_key(name)) for name in sorted(contract.STORED_DELIVERY_HEADERS)
)


def _delivery_headers() -> dict[str, str]:
    environ = request.environ
    found = {}
    for name, key in _DELIVERY_HEADERS:
        value = environ.get(key)
        # As werkzeug's request.headers: an empty Content-Type or Content-Length is absent.
        if value is not None and (value or name not in _CGI_HEADERS):
            found[name] = value
    return found


@bp.post("/webhooks/rivya")
@bp.post("/webhooks/rivya/")  # Rivya follows no redirects, so both spellings answer directly
@DELIVERY_DURATION.time()
@traced("webhook.receive")
def receive() -> Response:
    """Take one delivery from Rivya."""
    shared = state()
    try:
        body = _read_body(shared.settings.webhook_max_body_bytes)
    except RequestEntityTooLarge:
        DELIVERED["too_large"].inc()
        return json_error(413, "body_too_large")

    headers = _delivery_headers()
    try:
        verified = shared.verifier.verify(headers, body)
    except SignatureError as exc:
        log.info("delivery rejected code=%s reason=%s", exc.code, exc.detail)
        SIGNATURE_FAILURES.labels(exc.code).inc()
        DELIVERED["rejected"].inc()
        return json_error(401, exc.code)

    envelope = parse_envelope(body)
    if verified.webhook_id and envelope.event_id and verified.webhook_id != envelope.event_id:
        # The signed header and the signed body disagree: do not guess which one is the event.
        DELIVERED["id_mismatch"].inc()
        return json_error(400, "event_id_mismatch")
    event_id = verified.webhook_id or envelope.event_id
    if event_id is None:
        # Only possible without an id header (timestamped-hmac) and with an unreadable body;
        # the body's hash still deduplicates redeliveries of the same bytes.
        event_id = "sha256:" + hashlib.sha256(body).hexdigest()
    bind_contextvars(event_id=event_id)  # on every line until the request ends
    annotate(event_id=event_id)

    status = EventStatus.QUARANTINED if envelope.problem else EventStatus.RECEIVED
    reach("receiver.verified")
    row = event_row(
        event_id=event_id,
        body=body,
        source=EventSource.WEBHOOK,
        status=status,
        event_type=envelope.event_type,
        task_id=envelope.task_id,
        api_version=envelope.api_version,
        headers={name: value[:MAX_STORED_HEADER_CHARS] for name, value in headers.items()},
        secret_fingerprint=shared.secret_fingerprints[verified.secret_index],
        # The delivery's trace: the relay hands it on with the message, so the worker's
        # spans join the one that received it.
        traceparent=context_headers().get("traceparent"),
        status_reason=envelope.problem,
    )
    try:
        created = shared.inbox.store(row)
    except SQLAlchemyError as exc:
        log.error("database unavailable, delivery refused error=%s", type(exc).__name__)
        DELIVERED["unavailable"].inc()
        return json_error(
            503, "database_unavailable", **{"Retry-After": str(DATABASE_DOWN_RETRY_AFTER_SECONDS)}
        )
    reach("receiver.committed")

    if not created:
        log.info("duplicate delivery event_id=%s", event_id)
        DELIVERED["duplicate"].inc()
        return json_answer(200, {"status": "duplicate"})
    if status is EventStatus.QUARANTINED:
        # Answered 2xx so Rivya stops retrying: the stored bytes wait for an operator's replay.
        log.warning("event quarantined event_id=%s reason=%s", event_id, envelope.problem)
        DELIVERED["quarantined"].inc()
        return json_answer(202, {"status": "quarantined"})
    log.info("event accepted event_id=%s type=%s", event_id, envelope.event_type)
    DELIVERED["accepted"].inc()
    return json_answer(202, {"status": "accepted"})
