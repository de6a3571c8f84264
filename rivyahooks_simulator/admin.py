"""Admin routes under /_sim: faults, config, request log, scenarios, seeding, state.

They need no key: the simulator is a test and demo tool bound to 127.0.0.1 by default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request

from rivyahooks_protocol import contract
from rivyahooks_simulator.catalog import DEFAULT_MODEL, MODELS_BY_ID
from rivyahooks_simulator.config import KnobError, knobs_json, update_knobs
from rivyahooks_simulator.state import SimState

JSON = dict[str, Any]


class AdminError(Exception):
    """A bad admin request, answered 400 with a plain JSON message."""


def _body() -> JSON:
    body = request.get_json(silent=True)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise AdminError("the body must be a JSON object")
    return body


def _int(body: JSON, name: str, default: int, minimum: int = 0) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise AdminError(f"{name} must be an integer >= {minimum}")
    return value


def admin_blueprint(state: SimState, scenario: Callable[..., list[str]]) -> Blueprint:
    """Return the /_sim blueprint."""
    bp = Blueprint("rivya_sim_admin", __name__, url_prefix="/_sim")

    @bp.errorhandler(AdminError)
    @bp.errorhandler(KnobError)
    def bad_request(exc: Exception) -> tuple[Response, int]:
        return jsonify({"error": str(exc)}), 400

    @bp.route("/faults", methods=["GET", "POST"])
    def faults() -> Response:
        if request.method == "POST":
            state.injector.update(_body())
        return jsonify(state.injector.as_json())

    @bp.route("/config", methods=["GET", "POST"])
    def config() -> Response:
        if request.method == "POST":
            with state.lock:
                update_knobs(state.config, _body())
        return jsonify(knobs_json(state.config))

    @bp.get("/requests")
    def requests_log() -> Response:
        prefix = request.args.get("path_prefix", "")
        with state.lock:
            data = [r for r in state.requests if r["path"].startswith(prefix)]
        return jsonify({"data": data})

    @bp.delete("/requests")
    def reset_requests() -> Response:
        with state.lock:
            state.requests.clear()
        return jsonify({"data": []})

    @bp.post("/scenario")
    def run_scenario() -> Response:
        body = _body()
        model = body.get("model", DEFAULT_MODEL)
        if model not in MODELS_BY_ID:
            raise AdminError(f"unknown model {model!r}")
        outcome = body.get("outcome")
        if outcome not in (None, "succeeded", "failed"):
            raise AdminError("outcome must be succeeded, failed or null")
        ids = scenario(
            _int(body, "count", 1, 1),
            model=model,
            prompt=body.get("prompt"),
            outcome=outcome,
            outputs=body.get("outputs"),
            output_bytes=body.get("output_bytes"),
        )
        return jsonify({"ids": ids})

    @bp.post("/seed-events")
    def seed_events() -> Response:
        body = _body()
        status = body.get("delivery_status", "delivered")
        if status not in contract.DELIVERY_STATUSES:
            raise AdminError(f"delivery_status must be one of {contract.DELIVERY_STATUSES}")
        count = state.seed_events(
            _int(body, "count", 1, 1),
            float(body.get("older_than_seconds", 0)),
            _int(body, "spacing_ms", 1000, 1),
            status,
        )
        return jsonify({"seeded": count})

    @bp.post("/api-keys")
    def add_api_key() -> Response:
        body = _body()
        key = body.get("key")
        if not isinstance(key, str) or not key:
            raise AdminError("key must be a non-empty string")
        status = body.get("status", "active")
        if status not in ("active", "revoked", "expired"):
            raise AdminError("status must be active, revoked or expired")
        try:
            state.add_api_key(key, body.get("scopes"), status)
        except ValueError as exc:
            raise AdminError(str(exc)) from None
        return jsonify({"key": key, "scopes": body.get("scopes"), "status": status})

    @bp.post("/endpoints")
    def add_endpoint() -> Response:
        body = _body()
        url = body.get("url")
        if not isinstance(url, str):
            raise AdminError("url is required")
        scheme = body.get("scheme")
        if scheme is not None and scheme not in contract.SCHEMES:
            raise AdminError(f"scheme must be one of {contract.SCHEMES}")
        endpoint = state.add_endpoint(
            body.get("name", "simulator endpoint"),
            url,
            body.get("event_types", sorted(contract.EVENT_TYPES)),
            secret=body.get("secret"),
            scheme=scheme,
        )
        return jsonify(
            state.endpoint_json(endpoint, with_secret=True) | {"scheme": endpoint.scheme}
        )

    @bp.get("/state")
    def summary() -> Response:
        return jsonify(state.summary())

    return bp
