"""The API key stays out of reprs, messages and other hosts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from werkzeug.wrappers import Request, Response

from rivyahooks_foundation.settings import Settings
from rivyahooks_protocol.client import RivyaClient
from rivyahooks_protocol.errors import RivyaError, RivyaNotFound, RivyaProtocolError
from tasks.runtime import rivya_client
from tests.support.httpserver import serving

KEY = "rvya_sk_very_secret_value_123"


@pytest.fixture
def echo_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A server that redirects /redirect elsewhere and echoes the auth header in errors."""
    seen: list[dict[str, str]] = []

    def answer(request: Request) -> Response:
        # The raw request target, as sent: the server's decoded path would hide quoting.
        raw_path = request.environ["RAW_URI"].split("?", 1)[0]
        seen.append({"path": raw_path, "auth": request.headers.get("Authorization", "")})
        if raw_path == "/api/v1/credits":
            return Response(status=302, headers={"Location": "https://evil.example/steal"})
        body = (
            '{"error":{"code":"not_found","message":"no key '
            + request.headers.get("Authorization", "")
            + '","requestId":"req_1"}}'
        )
        return Response(body, status=404, content_type="application/json")

    with serving(answer) as url:
        yield url, seen


def test_repr_shows_base_url_only() -> None:
    settings = Settings(rivya_api_base="https://rivya.ai", rivya_api_key=KEY)
    with rivya_client(settings) as client:
        assert repr(client) == "RivyaClient(base_url='https://rivya.ai')"
        assert KEY not in str(client)


def test_redirects_are_not_followed(echo_server: tuple[str, list[dict[str, str]]]) -> None:
    url, seen = echo_server
    with RivyaClient(url, KEY, max_attempts=3) as client, pytest.raises(RivyaProtocolError) as info:
        client.credits()
    assert info.value.status == 302
    assert len(seen) == 1


def test_error_messages_never_hold_the_key(echo_server: tuple[str, list[dict[str, str]]]) -> None:
    url, _ = echo_server
    with RivyaClient(url, KEY) as client, pytest.raises(RivyaNotFound) as info:
        client.get_generation("task_1")
    error: RivyaError = info.value
    assert KEY not in str(error)
    assert KEY not in repr(error)
    assert KEY not in error.message
    assert "[redacted]" in error.message


def test_ids_cannot_change_the_target(echo_server: tuple[str, list[dict[str, str]]]) -> None:
    url, seen = echo_server
    with RivyaClient(url, KEY) as client:
        for hostile in ("https://evil.example/x", "../../credits", "a/b?c#d"):
            with pytest.raises(RivyaNotFound):
                client.get_generation(hostile)
        with pytest.raises(ValueError, match="invalid id"):
            client.get_generation("..")
    assert all(entry["path"].startswith("/api/v1/generations/") for entry in seen)
    assert all("/" not in entry["path"].removeprefix("/api/v1/generations/") for entry in seen)


def test_missing_key_fails_before_any_request() -> None:
    with RivyaClient("http://127.0.0.1:9", "") as client, pytest.raises(RivyaError) as info:
        client.credits()
    assert info.value.code == "api_key_missing"
