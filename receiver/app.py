"""The Flask application factory."""

from __future__ import annotations

from typing import Any

from flask import Flask
from structlog.contextvars import clear_contextvars
from werkzeug.exceptions import HTTPException

from models.data_keys import check_data_keys
from models.db import make_engine, make_session_factory
from models.inbox import InboxWriter
from receiver import delivery_counter, health, results, results_schema, webhooks
from receiver.console import install_console
from receiver.console.access import configured_tokens
from receiver.responses import json_error
from receiver.state import ReceiverState
from rivyahooks_foundation import faultpoints
from rivyahooks_foundation.settings import Settings, SettingsError
from rivyahooks_foundation.tracing import configure_tracing
from rivyahooks_protocol import contract
from rivyahooks_protocol.signatures import Verifier, fingerprint


def check_settings(settings: Settings) -> None:
    """Raise SettingsError, naming the variable, for any setting create_app cannot start with.

    gunicorn's start hook (rivyahooks.gunicorn_conf) calls this in the master before it forks,
    so a bad setting stops the server once instead of killing every worker at boot.
    """
    settings.require_webhook_secrets()
    if settings.webhook_public_keys and settings.webhook_scheme != contract.SCHEME_STANDARD:
        raise SettingsError(
            "RIVYA_WEBHOOK_PUBLIC_KEYS verify v1a entries of the Standard Webhooks scheme: "
            "set RIVYA_WEBHOOK_SCHEME=standard, or unset the public keys"
        )
    configured_tokens(settings)  # the console's two tokens must differ
    # Stored rows sealed under a key no longer configured: one line at start, not a 500
    # on every console page.
    check_data_keys(settings)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web app; production passes nothing and settings come from the environment."""
    settings = Settings.from_env() if settings is None else settings
    check_settings(settings)
    app = Flask("receiver")
    # Werkzeug bounds a body without Content-Length (chunked) by this while reading it, but
    # silently: it stops at the limit instead of failing. One byte over our limit lets the
    # endpoint see that a chunked body was too large and answer 413 (see webhooks._read_body).
    app.config["MAX_CONTENT_LENGTH"] = settings.webhook_max_body_bytes + 1
    # No pre-ping: it costs a round trip per request. A connection that died while idle fails
    # one request with 503 (Rivya retries it) and SQLAlchemy then replaces the whole pool.
    engine = make_engine(
        settings.database_url,
        transaction_pooling=settings.transaction_pooling,
        data_keys=settings.data_encryption_keys,
        pool_pre_ping=False,
    )
    faultpoints.arm(settings.fault_points_dir)
    app.extensions["rivyahooks"] = ReceiverState(
        settings=settings,
        engine=engine,
        inbox=InboxWriter(
            settings.database_url,
            transaction_pooling=settings.transaction_pooling,
            data_keys=settings.data_encryption_keys,
        ),
        sessions=make_session_factory(engine),
        verifier=Verifier(
            settings.webhook_scheme,
            settings.webhook_secrets,
            settings.webhook_tolerance_seconds,
            settings.webhook_public_keys,
        ),
        # In the Verifier's order: secrets, then public keys.
        secret_fingerprints=tuple(
            fingerprint(k) for k in (*settings.webhook_secrets, *settings.webhook_public_keys)
        ),
    )
    configure_tracing("web", settings.otel_exporter_otlp_endpoint)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(results.bp)
    app.register_blueprint(results.contract_bp)
    # spectree reads the app's routes to build /openapi.json; its own document and UI
    # routes are not wanted (ours is /openapi.json), so it is pointed at the app directly.
    results_schema.api.app = app
    install_console(app)
    # Last: its thread starts here, once nothing else can fail.
    delivery_counter.install(app, app.extensions["rivyahooks"].sessions)
    app.register_error_handler(HTTPException, _json_http_error)
    # gunicorn's threads serve one request after another: ids bound for one request
    # (event_id) must not appear on the next one's lines.
    app.teardown_request(_forget_request_context)
    return app


def _forget_request_context(_error: BaseException | None) -> None:
    clear_contextvars()


def _json_http_error(error: HTTPException) -> Any:
    # Small JSON for every framework error (404, 405, 413): never an HTML page, never a body.
    code = (error.name or "error").lower().replace(" ", "_")
    headers = {}
    if error.code == 405 and error.valid_methods:  # type: ignore[attr-defined]
        headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    return json_error(error.code or 500, code, **headers)
