"""A real HTTP server in a thread, answering with a test's own function.

For what the simulator is not meant to do: answer like a misconfigured proxy, send a
header no server should, drip bytes. Real sockets, so the client code runs as in production.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@contextmanager
def serving(answer: Callable[[Request], Response]) -> Iterator[str]:
    """Serve `answer` on a loopback port; yield the base URL."""

    @Request.application  # type: ignore[arg-type]
    def app(request: Request) -> Response:
        return answer(request)

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
