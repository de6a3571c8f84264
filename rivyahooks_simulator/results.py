"""Result file downloads: signed expiring URLs streaming deterministic bytes."""

from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Blueprint, Response, request

from rivyahooks_simulator.catalog import CONTENT_TYPES
from rivyahooks_simulator.content import iter_result_bytes
from rivyahooks_simulator.state import SimState

# ASSUMED in contract.EXPIRED_URL_STATUSES; 410 is the simulator's pick among them.
EXPIRED_STATUS = 410


def _cut(blocks: Iterator[bytes], keep: int) -> Iterator[bytes]:
    # Stop early while Content-Length announces the whole size; the server then closes the
    # connection, which is what a dropped transfer looks like to the client.
    sent = 0
    for block in blocks:
        if sent + len(block) >= keep:
            yield block[: keep - sent]
            return
        sent += len(block)
        yield block


def results_blueprint(state: SimState) -> Blueprint:
    """Return the blueprint serving /results/<task_id>/<index>."""
    bp = Blueprint("rivya_results", __name__)

    @bp.get("/results/<task_id>/<int:index>")
    def result(task_id: str, index: int) -> Response:
        injector = state.injector
        try:
            expires = int(request.args.get("exp", ""))
        except ValueError:
            return Response("missing or bad exp\n", status=403, mimetype="text/plain")
        if not state.signer.valid(task_id, index, expires, request.args.get("sig", "")):
            return Response("bad signature\n", status=403, mimetype="text/plain")
        fault = injector.next_download_fault()
        if fault == "expired" or expires < time.time():
            return Response("this link has expired\n", status=EXPIRED_STATUS, mimetype="text/plain")
        if fault == "error":
            return Response("storage unavailable\n", status=503, mimetype="text/plain")
        if fault == "rate_limited":
            headers = {"Retry-After": str(injector.faults.retry_after_seconds)}
            return Response("slow down\n", status=429, headers=headers, mimetype="text/plain")
        with state.lock:
            gen = state.generations.get(task_id)
            if gen is None or gen.status != "succeeded" or not 0 <= index < gen.outputs:
                return Response("not found\n", status=404, mimetype="text/plain")
            size, category = gen.output_bytes, gen.category
        if injector.chance(injector.faults.slow_ratio):
            time.sleep(injector.faults.slow_seconds)
        body = iter_result_bytes(task_id, index, size)
        if fault == "cut" or injector.chance(injector.faults.cut_download_ratio):
            request.environ["rivya_sim.fault"] = "cut"
            body = _cut(body, size // 2)
        response = Response(body, status=200, content_type=CONTENT_TYPES[category])
        response.headers["Content-Length"] = str(size)
        # Stream the generator as it is: no buffering, no re-encoding.
        response.direct_passthrough = True
        return response

    return bp
