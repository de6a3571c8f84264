"""The simulator's Flask app and the `Simulator` that serves it from background threads.

In a test:

    with Simulator(api_keys={"rvya_sk_test": None}).start() as sim:
        client = RivyaClient(sim.url, "rvya_sk_test")
        task_id = sim.scenario(1)[0]

`port=0` picks a free port; `sim.url` is then the real address.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from rivyahooks_protocol import contract
from rivyahooks_simulator.admin import admin_blueprint
from rivyahooks_simulator.api import api_blueprint
from rivyahooks_simulator.catalog import DEFAULT_MODEL
from rivyahooks_simulator.config import Faults, SimConfig, update_knobs
from rivyahooks_simulator.delivery import Dispatcher
from rivyahooks_simulator.faults import FaultInjector
from rivyahooks_simulator.results import results_blueprint
from rivyahooks_simulator.state import (
    ApiProblem,
    Endpoint,
    Generation,
    SimState,
    StoredEvent,
    iso_ms,
    new_id,
    now_ms,
)

JSON = dict[str, Any]
TICK_SECONDS = 0.02
HTTP_ERROR_CODES = {404: contract.ERROR_NOT_FOUND, 405: "method_not_allowed"}


def _envelope(status: int, code: str, message: str) -> Response:
    body = {
        "error": {"code": code, "message": message, contract.ERROR_REQUEST_ID_KEY: g.request_id}
    }
    response = jsonify(body)
    response.status_code = status
    return response


def _inject_api_fault(state: SimState) -> Response | None:
    injector = state.injector
    faults = injector.faults
    forced = injector.next_api_error()
    if forced is not None:
        if forced.body is not None:
            response = Response(forced.body, status=forced.status, content_type=forced.content_type)
        else:
            code = forced.code or (
                contract.ERROR_RATE_LIMITED if forced.status == 429 else "internal_error"
            )
            response = _envelope(forced.status, code, "Injected by the simulator.")
        if forced.retry_after is not None:
            response.headers["Retry-After"] = forced.retry_after
        g.fault = "forced"
        return response
    if injector.chance(faults.slow_ratio):
        g.fault = "slow"
        time.sleep(faults.slow_seconds)
    if injector.chance(faults.rate_limit_ratio):
        g.fault = "rate_limited"
        response = _envelope(429, contract.ERROR_RATE_LIMITED, "Too many requests.")
        response.headers["Retry-After"] = str(faults.retry_after_seconds)
        return response
    if injector.chance(faults.api_error_ratio):
        g.fault = "api_error"
        status = int(injector.choice(["500", "502", "503"]))
        response = _envelope(status, "internal_error", "Injected server error.")
        if status == 503:
            response.headers["Retry-After"] = str(faults.retry_after_seconds)
        return response
    return None


def create_app(state: SimState, dispatcher: Dispatcher) -> Flask:
    """Return the simulator's WSGI app over `state`."""
    app = Flask("rivya_simulator")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # Above the largest upload limit (video, 50 MB), so the API answers validation_failed.
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024

    def deliver_test(endpoint: Endpoint) -> JSON:
        created = now_ms()
        event_id = new_id("evt_")
        data = {
            "id": new_id("task_test_"),
            "status": "succeeded",
            "model": DEFAULT_MODEL,
            "reserved_credits": 0,
            "final_credits": 0,
            "created_at": iso_ms(created),
            "updated_at": iso_ms(created),
            "result": {"primary_url": None, "urls": []},
            "error": None,
        }
        payload = state.event_envelope(event_id, contract.EVENT_GENERATION_SUCCEEDED, created, data)
        event = StoredEvent(
            event_id,
            contract.EVENT_GENERATION_SUCCEEDED,
            created,
            payload,
            {endpoint.id: "pending"},
        )
        with state.lock:
            state.test_events[event_id] = event
        dispatcher.enqueue(event, [endpoint.id], faults=False)
        return payload

    def scenario(count: int, **options: Any) -> list[str]:
        return [create_for_scenario(state, **options).id for _ in range(count)]

    app.register_blueprint(api_blueprint(state, deliver_test))
    app.register_blueprint(admin_blueprint(state, scenario))
    app.register_blueprint(results_blueprint(state))

    @app.get("/_sim/deliveries")
    def deliveries() -> Response:
        # For a process outside (the demo) to wait until every delivery and retry is done.
        return jsonify({"pending": dispatcher.pending(), "running": dispatcher.running()})

    @app.before_request
    def before() -> Response | None:
        g.request_id = "req_" + secrets.token_hex(8)
        g.fault = None
        if request.path.startswith(contract.API_PREFIX + "/"):
            return _inject_api_fault(state)
        return None

    @app.after_request
    def after(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.request_id
        if not request.path.startswith("/_sim"):
            state.log_request(
                {
                    "method": request.method,
                    "path": request.path,
                    "query": request.query_string.decode("latin-1"),
                    "status": response.status_code,
                    "time": iso_ms(now_ms()),
                    "request_id": g.request_id,
                    # Result hosts must never see the API key; tests count this flag.
                    "authorization": "Authorization" in request.headers,
                    "fault": request.environ.get("rivya_sim.fault") or g.fault,
                }
            )
        return response

    @app.errorhandler(ApiProblem)
    def api_problem(exc: ApiProblem) -> Response:
        response = _envelope(exc.status, exc.code, exc.message)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response | HTTPException:
        if not request.path.startswith(contract.API_PREFIX):
            return exc
        status = exc.code or 500
        code = HTTP_ERROR_CODES.get(
            status, contract.ERROR_VALIDATION_FAILED if status < 500 else "internal_error"
        )
        status = 400 if status == 413 else status
        return _envelope(status, code, exc.description or exc.name)

    return app


def create_for_scenario(
    state: SimState,
    *,
    model: str = DEFAULT_MODEL,
    prompt: str | None = None,
    outcome: str | None = None,
    outputs: int | None = None,
    output_bytes: int | None = None,
) -> Generation:
    """Create one generation as if submitted through the API."""
    return state.create_generation(
        model,
        prompt or "scenario",
        None,
        None,
        outcome=outcome,
        outputs=outputs,
        output_bytes=output_bytes,
    )


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class Simulator:
    """A Rivya v1 look-alike serving real HTTP from background threads."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_keys: Mapping[str, Iterable[str] | None] | None = None,
        config: SimConfig | None = None,
        faults: Faults | None = None,
        seed: int | None = None,
        public_url: str | None = None,
        quiet: bool = True,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.config = config or SimConfig()
        self.injector = FaultInjector(faults or Faults(), seed)
        self.state = SimState(self.config, self.injector)
        keys = dict(api_keys) if api_keys else {"rvya_sk_sim_" + secrets.token_hex(16): None}
        for key, scopes in keys.items():
            self.state.add_api_key(key, scopes)
        # The first key: the one a test or the demo uses by default.
        self.api_key = next(iter(keys))
        self._public_url = public_url
        self._quiet = quiet
        self.dispatcher = Dispatcher(self.state)
        self.state.on_event = self.dispatcher.enqueue
        self.app = create_app(self.state, self.dispatcher)
        self._server: BaseWSGIServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> Simulator:
        """Bind, start serving, delivering and ticking in background threads; return self."""
        handler = _QuietHandler if self._quiet else WSGIRequestHandler
        self._server = make_server(
            self.host, self.requested_port, self.app, threaded=True, request_handler=handler
        )
        self.state.public_url = self._public_url or f"http://{self._url_host()}:{self.port}"
        self.dispatcher.start()
        self._threads = [
            # A short poll interval makes stop() quick, which keeps test teardown cheap.
            threading.Thread(
                target=self._server.serve_forever, args=(0.05,), name="sim-http", daemon=True
            ),
            threading.Thread(target=self._tick, name="sim-ticker", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def serve_forever(self) -> None:
        """Block until interrupted (the CLI's foreground mode)."""
        try:
            while not self._stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving and delivering; safe to call twice."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.dispatcher.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> Simulator:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _tick(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            self.state.advance()

    def _url_host(self) -> str:
        if self.host in ("0.0.0.0", ""):  # noqa: S104 (comparing, not binding)
            return "127.0.0.1"
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def port(self) -> int:
        """Return the bound port."""
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        """Return the base URL clients use (the API is under /api/v1)."""
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        return self.state.public_url

    # --- test and demo conveniences ----------------------------------------------

    def scenario(self, count: int = 1, **options: Any) -> list[str]:
        """Create `count` generations at once; options as in POST /_sim/scenario."""
        return [create_for_scenario(self.state, **options).id for _ in range(count)]

    def add_api_key(
        self, key: str, scopes: Iterable[str] | None = None, status: str = "active"
    ) -> None:
        """Add an API key (None scopes = every scope; status active|revoked|expired)."""
        self.state.add_api_key(key, scopes, status)

    def register_endpoint(
        self,
        url: str,
        *,
        secret: str | None = None,
        scheme: str | None = None,
        event_types: Iterable[str] = tuple(sorted(contract.EVENT_TYPES)),
        name: str = "simulator endpoint",
    ) -> JSON:
        """Register an endpoint with a chosen secret and scheme; return it with its secret."""
        endpoint = self.state.add_endpoint(name, url, list(event_types), secret, scheme)
        return self.state.endpoint_json(endpoint, with_secret=True)

    def set_faults(self, **changes: Any) -> None:
        """Change fault knobs or queue forced faults (next_api_errors, next_download_faults)."""
        self.injector.update(changes)

    def set_config(self, **changes: Any) -> None:
        """Change behaviour knobs."""
        with self.state.lock:
            update_knobs(self.config, changes)

    def requests(self, path_prefix: str = "") -> list[JSON]:
        """Return the request log (API and result requests)."""
        with self.state.lock:
            return [dict(r) for r in self.state.requests if r["path"].startswith(path_prefix)]

    def reset_requests(self) -> None:
        """Empty the request log."""
        with self.state.lock:
            self.state.requests.clear()

    def summary(self) -> JSON:
        """Return what GET /_sim/state returns."""
        return self.state.summary()

    def seed_events(
        self,
        count: int,
        older_than_seconds: float = 0,
        spacing_ms: int = 1000,
        delivery_status: str = "delivered",
    ) -> int:
        """Add `count` past events (and their generations) to the event log."""
        return self.state.seed_events(count, older_than_seconds, spacing_ms, delivery_status)

    def generation(self, task_id: str) -> JSON:
        """Return a generation object as GET /api/v1/generations/{id} would."""
        with self.state.lock:
            self.state.advance(only=task_id)
            return self.state.generation_json(self.state.generations[task_id])

    def wait_terminal(self, task_ids: Iterable[str], timeout: float = 10.0) -> list[JSON]:
        """Wait until every generation is terminal; return them."""
        ids = list(task_ids)
        deadline = time.monotonic() + timeout
        while True:
            generations = [self.generation(t) for t in ids]
            if all(g["status"] in contract.TERMINAL_GENERATION_STATUSES for g in generations):
                return generations
            if time.monotonic() > deadline:
                raise TimeoutError("generations did not finish in time")
            time.sleep(0.02)

    def wait_deliveries_idle(self, timeout: float = 10.0) -> None:
        """Wait until no delivery is scheduled (retries included) and none is running."""
        deadline = time.monotonic() + timeout
        while self.dispatcher.pending() or self.dispatcher.running():
            if time.monotonic() > deadline:
                raise TimeoutError("deliveries still pending")
            time.sleep(0.02)
