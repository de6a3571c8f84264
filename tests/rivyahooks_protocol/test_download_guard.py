"""The download guard: only global addresses, and the connection goes where the check looked.

No test here sends a byte anywhere but loopback: a connection that would go to a public
address is caught by a transport that records it instead.
"""

from __future__ import annotations

import datetime as dt
import http.server
import io
import ssl
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rivyahooks_protocol.download import check_url, download_result, pinned_request
from rivyahooks_protocol.errors import DisallowedURLError

PUBLIC = "93.184.216.34"


@pytest.mark.parametrize(
    "address",
    [
        "100.100.100.200",  # shared address space (RFC 6598): Alibaba Cloud's metadata
        "100.64.0.1",  # shared address space: carrier-grade NAT, Tailscale nodes
        "198.18.0.1",  # benchmarking
        "192.0.2.1",  # documentation
        "fec0::1",  # IPv6 site-local (deprecated; `is_global` on Python 3.11)
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a00:1::",  # 6to4 of 10.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b:1::a9fe:a9fe",  # local-use NAT64 of 169.254.169.254
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "::ffff:10.0.0.1",  # IPv4-mapped private
        "2001:db8::1",  # documentation
    ],
)
def test_non_global_addresses_are_refused_as_literal_and_resolved(address: str) -> None:
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(DisallowedURLError, match="non-public"):
        check_url(f"https://{literal}/result.png")
    with pytest.raises(DisallowedURLError, match="non-public"):
        check_url("https://cdn.example.com/x", (), lambda _host, _port: [address])


@pytest.mark.parametrize(
    "address",
    [
        PUBLIC,
        "2606:4700::1111",
        "2002:5db8:d822::",  # 6to4 of 93.184.216.34: checked as that address
        "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34
    ],
)
def test_global_addresses_are_allowed(address: str) -> None:
    assert check_url("https://cdn.example.com/x", (), lambda _h, _p: [address]) == (
        "cdn.example.com"
    )


@dataclass
class Rebinding:
    """A resolver whose first answer is public and every later one is loopback."""

    calls: list[str] = field(default_factory=list)

    def __call__(self, host: str, port: int) -> Iterable[str]:
        self.calls.append(host)
        return [PUBLIC] if len(self.calls) == 1 else ["127.0.0.1"]


def test_the_connection_goes_to_the_address_that_was_checked() -> None:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, stream=httpx.ByteStream(b"result bytes"))

    resolver = Rebinding()
    with httpx.Client(transport=httpx.MockTransport(record)) as client:
        result = download_result(
            "https://rebind.example:8443/r/0.png?sig=1",
            io.BytesIO(),
            allowed_hosts=(),
            max_bytes=100,
            timeout_seconds=5,
            http_client=client,
            resolve=resolver,
        )
    assert resolver.calls == ["rebind.example"]  # resolved once: nothing left to rebind
    (request,) = sent
    assert request.url.host == PUBLIC
    assert request.url.port == 8443
    assert request.url.raw_path == b"/r/0.png?sig=1"
    assert request.headers["Host"] == "rebind.example:8443"
    assert request.extensions["sni_hostname"] == "rebind.example"
    assert result.host == "rebind.example"


def test_an_unreachable_checked_address_falls_through_to_the_next() -> None:
    tried: list[str] = []

    def first_refuses(request: httpx.Request) -> httpx.Response:
        tried.append(request.url.host)
        if len(tried) == 1:
            raise httpx.ConnectError("unreachable", request=request)
        return httpx.Response(200, stream=httpx.ByteStream(b"ok"))

    with httpx.Client(transport=httpx.MockTransport(first_refuses)) as client:
        download_result(
            "https://cdn.example.com/x",
            io.BytesIO(),
            allowed_hosts=(),
            max_bytes=100,
            timeout_seconds=5,
            http_client=client,
            resolve=lambda _h, _p: ["2606:4700::1111", PUBLIC, "2606:4700::1111"],
        )
    assert tried == ["2606:4700::1111", PUBLIC]


# --- TLS to a pinned address keeps the name: SNI, Host, certificate -------------------------


@dataclass
class TlsServer:
    port: int
    ca: Path
    seen_sni: list[str | None]
    seen_host: list[str | None]


def _certificate(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: object, ca: bool
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())  # type: ignore[arg-type]


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsServer]:
    """An HTTPS server on 127.0.0.1 with a certificate for results.test from a test CA."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rivya-hooks test CA")])
    ca_cert = _certificate("rivya-hooks test CA", ca_key, ca_name, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("results.test", key, ca_name, ca_key, ca=False)
    (tmp_path / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    seen_sni: list[str | None] = []
    seen_host: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen_host.append(self.headers.get("Host"))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: object) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    context.sni_callback = lambda _sock, name, _ctx: seen_sni.append(name)  # type: ignore[assignment,misc,return-value]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TlsServer(server.server_address[1], tmp_path / "ca.pem", seen_sni, seen_host)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_pinned_connection_names_the_host_in_sni_and_host_and_verifies_it(
    tls_server: TlsServer,
) -> None:
    trust = ssl.create_default_context(cafile=str(tls_server.ca))
    with httpx.Client(verify=trust) as client:
        url = f"https://results.test:{tls_server.port}/file"
        response = client.send(pinned_request(client, url, "127.0.0.1", 5))
        assert (response.status_code, response.content) == (200, b"ok")
    assert tls_server.seen_sni == ["results.test"]
    assert tls_server.seen_host == [f"results.test:{tls_server.port}"]


def test_a_pinned_connection_still_refuses_a_certificate_for_another_name(
    tls_server: TlsServer,
) -> None:
    trust = ssl.create_default_context(cafile=str(tls_server.ca))
    with httpx.Client(verify=trust) as client:
        url = f"https://other.test:{tls_server.port}/file"
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.send(pinned_request(client, url, "127.0.0.1", 5))
    assert tls_server.seen_host == []
