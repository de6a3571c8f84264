"""A live in-process simulator, a client, a capturing receiver, and the contract's schemas."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from rivyahooks_protocol.client import RivyaClient
from rivyahooks_simulator import SimConfig, Simulator
from tests.support.eventually import eventually

API_KEY = "rvya_sk_contract_test_key"
SCHEMAS = Path(__file__).parents[1] / "rivyahooks_simulator" / "schemas"


def fast_config(**changes: Any) -> SimConfig:
    """Return simulator timings short enough for tests."""
    values: dict[str, Any] = {
        "queued_seconds": 0.02,
        "processing_seconds": 0.05,
        "failure_ratio": 0.0,
        "delivery_backoff_seconds": 0.05,
        "delivery_max_attempts": 3,
        "delivery_timeout_seconds": 2.0,
    }
    values.update(changes)
    return SimConfig(**values)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(api_keys={API_KEY: None}, config=fast_config(), seed=7) as simulator:
        yield simulator


@pytest.fixture
def rivya(sim: Simulator) -> Iterator[RivyaClient]:
    with RivyaClient(sim.url, API_KEY, backoff_base_seconds=0.05, timeout_seconds=5) as client:
        yield client


def _registry() -> Registry[Any]:
    # Schemas refer to each other by file name ("generation.json").
    resources = [
        (path.name, Resource.from_contents(json.loads(path.read_text())))
        for path in SCHEMAS.glob("*.json")
    ]
    return Registry().with_resources(resources)


def validate(kind: str, document: Any) -> None:
    """Validate `document` against tests/rivyahooks_simulator/schemas/<kind>.json."""
    schema = json.loads((SCHEMAS / f"{kind}.json").read_text())
    jsonschema.Draft202012Validator(schema, registry=_registry()).validate(document)


@dataclass
class Captured:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A local HTTP server that records every POST and answers with `statuses` in turn."""

    url: str = ""
    captured: list[Captured] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Captured]:
        def arrived() -> list[Captured] | None:
            with self.lock:
                return list(self.captured) if len(self.captured) >= count else None

        return eventually(arrived, timeout, interval=0.01, what=f"{count} deliveries")


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    @Request.application  # type: ignore[arg-type]
    def app(request: Request) -> Response:
        with state.lock:
            state.captured.append(Captured(dict(request.headers), request.get_data()))
            status = state.statuses.pop(0) if state.statuses else 204
        return Response(status=status)

    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/hooks"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
