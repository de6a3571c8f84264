"""What downstream apps read: the results API (feed, listing, documents, files, tokens)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from models.events import EventSource, EventStatus
from models.generations import GenerationStatus
from models.inbox import insert_event
from rivyahooks_foundation.settings import Settings
from storage import open_storage
from tests.support.results import add_generation, store_output
from tests.support.s3server import S3Server

TOKEN = "results-token-for-tests"
NEXT_TOKEN = "results-token-rotated-in"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FILE = bytes(range(256)) * 40  # 10,240 bytes
FILE_SHA = hashlib.sha256(FILE).hexdigest()


def seed(sessions: sessionmaker[Session], settings: Settings) -> None:
    with sessions.begin() as session:
        add_generation(session, "task_ok", GenerationStatus.SUCCEEDED, model="m")
        add_generation(session, "task_bad", GenerationStatus.FAILED, error_code="model_timeout")
        insert_event(session, event_id="evt_1", body=b"{}", source=EventSource.WEBHOOK)
        insert_event(
            session,
            event_id="evt_2",
            body=b"x",
            source=EventSource.WEBHOOK,
            status=EventStatus.QUARANTINED,
        )
    store_output(sessions, settings, "task_ok", b"ten bytes!")


def store_file(sessions: sessionmaker[Session], settings: Settings, task_id: str) -> None:
    """Store FILE as output 0 of a succeeded generation."""
    with sessions.begin() as session:
        add_generation(session, task_id, GenerationStatus.SUCCEEDED)
    store_output(sessions, settings, task_id, FILE)


@pytest.fixture
def results_app(settings: Settings, make_app: Callable[[Settings], Flask]) -> Flask:
    return make_app(settings.replace(results_api_tokens=(TOKEN, NEXT_TOKEN)))


@pytest.fixture
def api(results_app: Flask) -> FlaskClient:
    return results_app.test_client()


def test_results_are_closed_without_a_configured_token(client, sessions, settings) -> None:  # type: ignore[no-untyped-def]
    seed(sessions, settings)
    response = client.get("/results/task_ok")
    assert response.status_code == 404
    assert response.json == {"error": {"code": "results_api_disabled"}}


def test_every_configured_token_is_accepted_and_nothing_else(
    settings: Settings, sessions: sessionmaker[Session], make_app: Callable[[Settings], Flask]
) -> None:
    seed(sessions, settings)
    app = make_app(settings.replace(results_api_tokens=(TOKEN, NEXT_TOKEN)))
    client = app.test_client()
    assert client.get("/results/task_ok").status_code == 401
    for offered in ("Bearer nope", f"Bearer {TOKEN}x", TOKEN, f"bearer  {TOKEN}"):
        wrong = client.get("/results/task_ok", headers={"Authorization": offered})
        assert wrong.status_code == 401, offered
        assert wrong.json == {"error": {"code": "unauthorized"}}
    for token in (TOKEN, NEXT_TOKEN):
        ok = client.get("/results/task_ok", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert ok.json["status"] == "succeeded"
        assert ok.json["outputs"][0]["size_bytes"] == 10
    # The single-token variable of earlier versions still works.
    older = make_app(settings.replace(results_api_token=TOKEN))
    answer = older.test_client().get("/results/task_ok", headers=AUTH)
    assert answer.status_code == 200


def test_results_list_filters_by_status(api: FlaskClient, sessions, settings) -> None:  # type: ignore[no-untyped-def]
    seed(sessions, settings)
    failed = api.get("/results?status=failed", headers=AUTH).json
    assert [g["task_id"] for g in failed["data"]] == ["task_bad"]
    assert failed["data"][0]["error"]["code"] == "model_timeout"
    assert api.get("/results?status=bogus", headers=AUTH).status_code == 400
    assert api.get("/results/task_nope", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("before=abc", "before"),
        ("before=99999999999999999999", "before"),
        ("before=0", "before"),
        ("since=yesterday", "since"),
        ("since=2026-05-11T10:00:00", "since"),  # no time zone: ambiguous
        ("page=2", "page"),
    ],
)
def test_the_listing_refuses_bad_parameters_with_the_envelope(
    api: FlaskClient, query: str, parameter: str
) -> None:
    answer = api.get(f"/results?{query}", headers=AUTH)
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "invalid_parameter"
    assert answer.json["error"]["message"].startswith(f"{parameter}:")


def test_the_listing_pages_with_limit_and_before_and_filters_by_since(
    api: FlaskClient, sessions: sessionmaker[Session], settings: Settings
) -> None:
    seed(sessions, settings)
    first = api.get("/results?limit=1", headers=AUTH).json
    assert [g["task_id"] for g in first["data"]] == ["task_bad"]
    assert first["has_more"] is True
    second = api.get(f"/results?limit=1&before={first['next_before']}", headers=AUTH).json
    assert [g["task_id"] for g in second["data"]] == ["task_ok"]
    assert second["has_more"] is False
    assert second["next_before"] is None
    future = api.get("/results?since=2999-01-01T00:00:00Z", headers=AUTH).json
    assert future["data"] == []
    past = api.get("/results?since=2000-01-01T00:00:00%2B02:00", headers=AUTH).json
    assert len(past["data"]) == 2


def test_documents_carry_their_times_and_file_links(
    api: FlaskClient, sessions: sessionmaker[Session], settings: Settings
) -> None:
    seed(sessions, settings)
    document = api.get("/results/task_ok", headers=AUTH).json
    assert document["created_at"] is not None
    assert {"submitted_at", "finished_at", "results_stored_at"} <= set(document)
    (output,) = document["outputs"]
    assert output["url"] == "/results/task_ok/outputs/0"
    assert output["sha256"] == hashlib.sha256(b"ten bytes!").hexdigest()
    assert output["filename"] == "task_ok-0.png"


@pytest.mark.parametrize("query", ["after=x", "after=99999999999999999999", "limit=0", "wait=31"])
def test_the_feed_refuses_bad_parameters(api: FlaskClient, query: str) -> None:
    answer = api.get(f"/results/feed?{query}", headers=AUTH)
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "invalid_parameter"


def test_the_feed_pages_in_commit_order(
    api: FlaskClient, sessions: sessionmaker[Session], settings: Settings
) -> None:
    seed(sessions, settings)
    with sessions.begin() as session:
        add_generation(session, "task_late", GenerationStatus.QUEUED)
    first = api.get("/results/feed?limit=2", headers=AUTH).json
    assert first["object"] == "list"
    assert [e["task_id"] for e in first["data"]] == ["task_bad", "task_ok"]
    assert first["has_more"] is True
    rest = api.get(f"/results/feed?after={first['next_cursor']}", headers=AUTH).json
    assert [e["task_id"] for e in rest["data"]] == ["task_late"]
    assert rest["has_more"] is False
    # Nothing new: the cursor stays where it is, and `wait` gives up after its time.
    empty = api.get(f"/results/feed?after={rest['next_cursor']}&wait=1", headers=AUTH).json
    assert empty == {
        "object": "list",
        "data": [],
        "next_cursor": rest["next_cursor"],
        "has_more": False,
    }


# --- the file endpoint -------------------------------------------------------------------


def fetch(client: FlaskClient, url: str, **headers: str) -> tuple[int, bytes, dict[str, str]]:
    """GET a file and close the answer, as a WSGI server does once it is sent."""
    with client.get(url, headers={**AUTH, **headers}) as answer:
        return answer.status_code, answer.data, dict(answer.headers)


def test_a_file_is_streamed_with_etag_range_type_and_name(
    api: FlaskClient, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    store_file(sessions, settings, "task_file")
    url = "/results/task_file/outputs/0"
    status, body, headers = fetch(api, url)
    assert status == 200
    assert body == FILE
    assert headers["ETag"] == f'"{FILE_SHA}"'
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Length"] == str(len(FILE))
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Disposition"] == "attachment; filename=task_file-0.png"

    status, body, headers = fetch(api, url, Range="bytes=100-199")
    assert status == 206
    assert body == FILE[100:200]
    assert headers["Content-Range"] == f"bytes 100-199/{len(FILE)}"

    status, body, _ = fetch(api, url, **{"If-None-Match": f'"{FILE_SHA}"'})
    assert status == 304
    assert body == b""

    status, body, headers = fetch(api, url, Range=f"bytes={len(FILE) + 10}-")
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{len(FILE)}"
    assert b"range_not_satisfiable" in body

    assert api.get("/results/task_file/outputs/1", headers=AUTH).status_code == 404
    assert api.get(url).status_code == 401


@pytest.mark.parametrize("delivery", ["redirect", "proxy"])
def test_a_file_in_object_storage_is_redirected_or_proxied(
    s3: S3Server,
    settings: Settings,
    sessions: sessionmaker[Session],
    delivery: str,
    make_app: Callable[[Settings], Flask],
) -> None:
    settings = settings.replace(
        storage_url=s3.storage_url(), results_file_delivery=delivery, results_api_tokens=(TOKEN,)
    )
    store_file(sessions, settings, "task_s3")
    app = make_app(settings)
    client = app.test_client()
    url = "/results/task_s3/outputs/0"
    answer = client.get(url, headers=AUTH)
    if delivery == "redirect":
        assert answer.status_code == 302
        signed = answer.headers["Location"]
        assert signed.startswith(s3.url)
        assert "Expires=" in signed or "X-Amz-Expires=300" in signed
        fetched = httpx.get(signed)
        assert fetched.status_code == 200
        assert fetched.content == FILE
        assert fetched.headers["Content-Type"] == "image/png"
        assert "task_s3-0.png" in fetched.headers["Content-Disposition"]
    else:
        answer.close()
        status, body, headers = fetch(client, url)
        assert status == 200
        assert body == FILE
        assert headers["ETag"] == f'"{FILE_SHA}"'
        status, body, _ = fetch(client, url, Range="bytes=-100")
        assert status == 206
        assert body == FILE[-100:]


# --- files that went wrong, and files that must not be rendered ----------------------------


@pytest.mark.parametrize("store", ["file", "s3"])
def test_a_stored_file_deleted_behind_our_back_is_404_file_missing(
    request: pytest.FixtureRequest,
    settings: Settings,
    sessions: sessionmaker[Session],
    make_app: Callable[[Settings], Flask],
    store: str,
) -> None:
    if store == "s3":
        s3: S3Server = request.getfixturevalue("s3")
        settings = settings.replace(storage_url=s3.storage_url(), results_file_delivery="proxy")
    settings = settings.replace(results_api_tokens=(TOKEN,))
    with sessions.begin() as session:
        add_generation(session, "task_gone", GenerationStatus.SUCCEEDED)
    key = store_output(sessions, settings, "task_gone", FILE)
    open_storage(settings).delete(key)
    client = make_app(settings).test_client()
    answer = client.get("/results/task_gone/outputs/0", headers=AUTH)
    assert answer.status_code == 404
    assert answer.json == {
        "error": {"code": "file_missing", "message": "the stored file is missing"}
    }


def test_a_file_that_ends_early_fails_the_answer_rather_than_ending_it_short(
    api: FlaskClient, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        add_generation(session, "task_cut", GenerationStatus.SUCCEEDED)
    key = store_output(sessions, settings, "task_cut", FILE)
    # The disk lost the file's tail after it was recorded whole.
    path = settings.storage_root() / key
    path.write_bytes(FILE[: len(FILE) // 2])
    answer = api.get("/results/task_cut/outputs/0", headers=AUTH)
    assert answer.status_code == 200  # the headers went out before the file ran short
    with pytest.raises(OSError, match=f"ended after {len(FILE) // 2} of {len(FILE)} bytes"):
        answer.get_data()


@pytest.mark.parametrize(
    ("stored", "served"),
    [
        ("text/html", "application/octet-stream"),
        ("image/svg+xml", "application/octet-stream"),
        ("application/javascript", "application/octet-stream"),
        ("TEXT/HTML; charset=utf-8", "application/octet-stream"),
        ("image/png", "image/png"),
        ("audio/mpeg", "audio/mpeg"),
    ],
)
def test_a_file_is_served_only_as_a_type_browsers_merely_display(
    api: FlaskClient, settings: Settings, sessions: sessionmaker[Session], stored: str, served: str
) -> None:
    with sessions.begin() as session:
        add_generation(session, "task_typed", GenerationStatus.SUCCEEDED)
    store_output(
        sessions, settings, "task_typed", b"<script>alert(1)</script>", content_type=stored
    )
    status, _, headers = fetch(api, "/results/task_typed/outputs/0")
    assert status == 200
    assert headers["Content-Type"] == served
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == "default-src 'none'; sandbox"


def test_a_signed_url_is_sigv4_and_carries_only_an_allowed_type(
    s3: S3Server,
    settings: Settings,
    sessions: sessionmaker[Session],
    make_app: Callable[[Settings], Flask],
) -> None:
    settings = settings.replace(
        storage_url=s3.storage_url(), results_file_delivery="redirect", results_api_tokens=(TOKEN,)
    )
    with sessions.begin() as session:
        add_generation(session, "task_html", GenerationStatus.SUCCEEDED)
    store_output(sessions, settings, "task_html", b"<html></html>", content_type="text/html")
    answer = make_app(settings).test_client().get("/results/task_html/outputs/0", headers=AUTH)
    assert answer.status_code == 302
    signed = httpx.URL(answer.headers["Location"])
    assert signed.params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert signed.params["response-content-type"] == "application/octet-stream"
    fetched = httpx.get(str(signed))
    assert fetched.status_code == 200
    assert fetched.headers["Content-Type"] == "application/octet-stream"


def test_several_ranges_get_the_whole_file(
    api: FlaskClient, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    store_file(sessions, settings, "task_ranges")
    status, body, headers = fetch(api, "/results/task_ranges/outputs/0", Range="bytes=0-1,3-4")
    assert status == 200
    assert body == FILE
    assert "Content-Range" not in headers
