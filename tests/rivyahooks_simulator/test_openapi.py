"""The simulator's openapi.json lists every /api/v1 route it serves."""

from __future__ import annotations

import re

import httpx

from rivyahooks_protocol import contract
from rivyahooks_simulator import Simulator


def test_openapi_lists_every_api_route(sim: Simulator) -> None:
    document = httpx.get(f"{sim.url}/api/v1/openapi.json").json()
    paths = document["paths"]
    for rule in sim.app.url_map.iter_rules():
        if not rule.rule.startswith(contract.API_PREFIX + "/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert path in paths, f"{path} is not in openapi.json"
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert method.lower() in paths[path], f"{method} {path} is not in openapi.json"
