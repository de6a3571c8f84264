"""A full disk for object storage: a small proxy in front of moto that can refuse writes.

moto never runs out of space, so the soak puts this in front of it on the data host. While
the flag file exists, every PUT and POST (objects, parts, multipart create and complete) is
answered 507 InsufficientStorage, as a store that ran out of room; reads and deletes pass, so
a worker can still abort what it started. Run as `python -m tests.soak.s3gate LISTEN_HOST
LISTEN_PORT UPSTREAM_PORT FLAG_FILE`; the upstream is moto on the host's own loopback.
"""

from __future__ import annotations

import http.client
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection"}
CHUNK = 1024 * 1024
REFUSAL = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InsufficientStorage</Code>'
    b"<Message>Not enough storage is available to complete this request.</Message></Error>"
)


class Gate(BaseHTTPRequestHandler):
    # HTTP/1.1 so boto3 keeps its connections and its Expect: 100-continue is answered.
    protocol_version = "HTTP/1.1"
    upstream_port = 0
    flag = Path("/nonexistent")

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self) -> None:
        body = self._body()
        if self.command in ("PUT", "POST") and self.flag.exists():
            self.send_response(507)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(REFUSAL)))
            self.end_headers()
            self.wfile.write(REFUSAL)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=300)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            length = answer.getheader("Content-Length")
            payload = b"" if length is not None else answer.read()
            self.send_response(answer.status, answer.reason)
            for key, value in answer.getheaders():
                if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", length if length is not None else str(len(payload)))
            self.end_headers()
            if length is None:
                self.wfile.write(payload)
            elif self.command != "HEAD":
                while chunk := answer.read(CHUNK):
                    self.wfile.write(chunk)
        finally:
            upstream.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815 (http.server's names)


def main(argv: list[str]) -> None:
    host, port, upstream_port, flag = argv
    Gate.upstream_port = int(upstream_port)
    Gate.flag = Path(flag)
    server = ThreadingHTTPServer((host, int(port)), Gate)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
