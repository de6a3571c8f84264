"""The public API v1 routes: generations, credits, models, files, webhooks, event log."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, request

from rivyahooks_protocol import contract
from rivyahooks_simulator.catalog import MODELS, MODELS_BY_ID
from rivyahooks_simulator.openapi import openapi_document
from rivyahooks_simulator.state import (
    ApiProblem,
    DeliveryAttempt,
    SimState,
    iso_ms,
    new_id,
    new_signing_secret,
    now_ms,
    parse_iso_ms,
)

JSON = dict[str, Any]
MAX_PROMPT_CHARS = 4000
MAX_ID_CHARS = 200


def _invalid(message: str) -> ApiProblem:
    return ApiProblem(400, contract.ERROR_VALIDATION_FAILED, message)


def _json_body() -> JSON:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    return body


def _optional_str(body: JSON, name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise _invalid(f"{name} must be a string of at most {limit} characters.")
    return value


def _event_types(value: Any) -> list[str]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(t, str) and t in contract.EVENT_TYPES for t in value)
    ):
        raise _invalid(f"event_types must be a non-empty list of {sorted(contract.EVENT_TYPES)}.")
    return list(dict.fromkeys(value))


def _endpoint_url(value: Any) -> str:
    # Real Rivya demands https and a public host; the simulator must reach local receivers,
    # so it only refuses what is not an http(s) URL at all.
    if not isinstance(value, str) or len(value) > 2000:
        raise _invalid("url must be a string.")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiProblem(
            400, contract.ERROR_WEBHOOK_URL_REJECTED, "The webhook URL must be an http(s) URL."
        )
    return value


def _attempt_json(attempt: DeliveryAttempt) -> JSON:
    return {
        "id": attempt.id,
        "object": "webhook_delivery",
        "endpoint_id": attempt.endpoint_id,
        "event_id": attempt.event_id,
        "event_type": attempt.event_type,
        "attempt": attempt.attempt,
        "duplicate": attempt.duplicate,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "succeeded": attempt.succeeded,
        "started_at": iso_ms(attempt.started_ms),
        "finished_at": iso_ms(attempt.finished_ms),
    }


def api_blueprint(state: SimState, deliver_test: Any) -> Blueprint:
    """Return the /api/v1 blueprint bound to `state`."""
    bp = Blueprint("rivya_api", __name__, url_prefix=contract.API_PREFIX)

    def auth(scope: str) -> str:
        return state.authenticate(request.headers.get("Authorization"), scope).key

    # --- public ----------------------------------------------------------------------

    @bp.get(contract.PATH_MODELS)
    def list_models() -> Response:
        return jsonify({"object": "list", "data": list(MODELS)})

    @bp.get(contract.PATH_OPENAPI)
    def openapi() -> Response:
        return jsonify(openapi_document())

    # --- generations -----------------------------------------------------------------

    @bp.post(contract.PATH_GENERATIONS)
    def create_generation() -> Response:
        key = auth("generations:create")
        body = _json_body()
        model = body.get("model")
        if not isinstance(model, str) or model not in MODELS_BY_ID:
            raise _invalid("model must be the id of a model from GET /api/v1/models.")
        if MODELS_BY_ID[model]["api_status"] != "available":
            raise _invalid(f"The model {model} is not available in the API.")
        prompt = _optional_str(body, "prompt", MAX_PROMPT_CHARS)
        client_request_id = _optional_str(body, "client_request_id", MAX_ID_CHARS)
        params = body.get("params")
        if params is not None and not isinstance(params, dict):
            raise _invalid("params must be an object.")
        idem_key = request.headers.get(contract.IDEMPOTENCY_KEY_HEADER)
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with state.lock:
            if idem_key:
                seen = state.idempotency.get((key, idem_key))
                if seen is not None:
                    if seen[0] != fingerprint:
                        raise ApiProblem(
                            409,
                            contract.ERROR_IDEMPOTENCY_CONFLICT,
                            "This Idempotency-Key was used with a different request body.",
                        )
                    gen = state.generations[seen[1]]
                    state.advance(only=gen.id)
                    return jsonify(state.generation_json(gen))
            gen = state.create_generation(model, prompt, params, client_request_id)
            if idem_key:
                state.idempotency[(key, idem_key)] = (fingerprint, gen.id)
            return jsonify(state.generation_json(gen))

    @bp.get(f"{contract.PATH_GENERATIONS}/<task_id>")
    def get_generation(task_id: str) -> Response:
        auth("generations:read")
        with state.lock:
            gen = state.generations.get(task_id)
            if gen is None:
                raise ApiProblem(404, contract.ERROR_NOT_FOUND, "No such generation.")
            state.advance(only=task_id)
            return jsonify(state.generation_json(gen))

    # --- credits and files -----------------------------------------------------------

    @bp.get(contract.PATH_CREDITS)
    def credits() -> Response:
        auth("credits:read")
        with state.lock:
            return jsonify({"current_credits": state.credits})

    @bp.post(contract.PATH_FILES)
    def upload_file() -> Response:
        auth("files:create")
        kind = request.form.get("kind")
        if kind not in contract.FILE_KINDS:
            raise _invalid(f"kind must be one of {list(contract.FILE_KINDS)}.")
        upload = request.files.get("file")
        if upload is None:
            raise _invalid("A multipart field named file is required.")
        digest = hashlib.sha256()
        size = 0
        while chunk := upload.stream.read(1024 * 1024):
            size += len(chunk)
            digest.update(chunk)
        limit = contract.FILE_SIZE_LIMITS[kind]
        if size > limit:
            raise _invalid(f"A {kind} file may be at most {limit} bytes.")
        if size == 0:
            raise _invalid("The file is empty.")
        model = request.form.get("model")
        if model is not None and model not in MODELS_BY_ID:
            raise _invalid("model must be the id of a model.")
        file_id = new_id("file_")
        record = {
            "id": file_id,
            "object": "file",
            "kind": kind,
            "model": model,
            "client_request_id": request.form.get("client_request_id"),
            "filename": upload.filename,
            "content_type": upload.mimetype or None,
            "bytes": size,
            "sha256": digest.hexdigest(),
            # The simulator keeps metadata only; this URL is not served.
            "url": f"{state.public_url}/uploads/{file_id}",
            "created_at": iso_ms(now_ms()),
        }
        with state.lock:
            state.files[file_id] = record
        return jsonify(record)

    @bp.get(f"{contract.PATH_FILES}/<file_id>")
    def get_file(file_id: str) -> Response:
        auth("files:read")
        with state.lock:
            record = state.files.get(file_id)
        if record is None:
            raise ApiProblem(404, contract.ERROR_NOT_FOUND, "No such file.")
        return jsonify(record)

    # --- webhook endpoints -----------------------------------------------------------

    @bp.post(contract.PATH_WEBHOOKS)
    def create_webhook() -> Response:
        auth("webhooks:manage")
        body = _json_body()
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 200:
            raise _invalid("name must be a string of 1 to 200 characters.")
        endpoint = state.add_endpoint(
            name, _endpoint_url(body.get("url")), _event_types(body.get("event_types"))
        )
        return jsonify(state.endpoint_json(endpoint, with_secret=True))

    @bp.get(contract.PATH_WEBHOOKS)
    def list_webhooks() -> Response:
        auth("webhooks:manage")
        with state.lock:
            data = [state.endpoint_json(e) for e in state.endpoints.values()]
        return jsonify({"object": "list", "data": data, "has_more": False})

    @bp.get(f"{contract.PATH_WEBHOOKS}/<endpoint_id>")
    def get_webhook(endpoint_id: str) -> Response:
        auth("webhooks:manage")
        return jsonify(state.endpoint_json(state.get_endpoint(endpoint_id)))

    @bp.patch(f"{contract.PATH_WEBHOOKS}/<endpoint_id>")
    def update_webhook(endpoint_id: str) -> Response:
        auth("webhooks:manage")
        endpoint = state.get_endpoint(endpoint_id)
        body = _json_body()
        with state.lock:
            if endpoint.status == "revoked":
                raise _invalid("A revoked endpoint cannot be changed.")
            if "name" in body:
                if not isinstance(body["name"], str) or not body["name"]:
                    raise _invalid("name must be a non-empty string.")
                endpoint.name = body["name"]
            if "url" in body:
                endpoint.url = _endpoint_url(body["url"])
            if "event_types" in body:
                endpoint.event_types = _event_types(body["event_types"])
            if "status" in body:
                if body["status"] not in ("active", "disabled"):
                    raise _invalid("status must be active or disabled.")
                endpoint.status = body["status"]
                endpoint.disabled_ms = now_ms() if endpoint.status == "disabled" else None
            endpoint.updated_ms = now_ms()
            return jsonify(state.endpoint_json(endpoint))

    @bp.delete(f"{contract.PATH_WEBHOOKS}/<endpoint_id>")
    def delete_webhook(endpoint_id: str) -> Response:
        auth("webhooks:manage")
        endpoint = state.get_endpoint(endpoint_id)
        with state.lock:
            if endpoint.revoked_ms is None:
                endpoint.status = "revoked"
                endpoint.revoked_ms = endpoint.updated_ms = now_ms()
            return jsonify(state.endpoint_json(endpoint))

    @bp.post(f"{contract.PATH_WEBHOOKS}/<endpoint_id>/rotate-secret")
    def rotate_secret(endpoint_id: str) -> Response:
        auth("webhooks:manage")
        endpoint = state.get_endpoint(endpoint_id)
        with state.lock:
            # Deliveries from now on are signed with the new secret only: the receiver must
            # be configured with both while it switches over.
            endpoint.secret = new_signing_secret()
            endpoint.updated_ms = now_ms()
            return jsonify(state.endpoint_json(endpoint, with_secret=True))

    @bp.post(f"{contract.PATH_WEBHOOKS}/<endpoint_id>/test")
    def test_webhook(endpoint_id: str) -> Response:
        auth("webhooks:manage")
        endpoint = state.get_endpoint(endpoint_id)
        return jsonify(deliver_test(endpoint))

    @bp.get(f"{contract.PATH_WEBHOOKS}/<endpoint_id>/deliveries")
    def list_deliveries(endpoint_id: str) -> Response:
        auth("webhooks:manage")
        state.get_endpoint(endpoint_id)
        with state.lock:
            attempts = list(reversed(state.deliveries.get(endpoint_id, [])))
        data = [_attempt_json(a) for a in attempts]
        return jsonify({"object": "list", "data": data, "has_more": False})

    # --- event log -------------------------------------------------------------------

    @bp.get(contract.EVENTS_LOG_PATH)
    def list_events() -> Response:
        auth("webhooks:manage")
        args = request.args
        raw_limit = args.get(contract.EVENTS_PARAM_LIMIT, str(contract.EVENTS_PAGE_LIMIT_DEFAULT))
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= contract.EVENTS_PAGE_LIMIT_MAX:
            raise _invalid(f"limit must be 1 to {contract.EVENTS_PAGE_LIMIT_MAX}.")
        created_after_ms = None
        raw_after = args.get(contract.EVENTS_PARAM_CREATED_AFTER)
        if raw_after is not None:
            try:
                created_after_ms = parse_iso_ms(raw_after)
            except ValueError:
                raise _invalid("created_after must be an ISO-8601 time.") from None
        type_ = args.get(contract.EVENTS_PARAM_TYPE)
        if type_ is not None and type_ not in contract.EVENT_TYPES:
            raise _invalid(f"type must be one of {sorted(contract.EVENT_TYPES)}.")
        data, has_more = state.event_page(
            int(raw_limit), args.get(contract.EVENTS_PARAM_STARTING_AFTER), created_after_ms, type_
        )
        return jsonify({"object": "list", "data": data, "has_more": has_more})

    return bp
