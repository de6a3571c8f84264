"""README's webhook receiver verifies what this service signs, and handles each message once.

The example is run as written (its code block, extracted), against messages made and signed
by the service's own code, so the README cannot drift from what apps actually receive.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from models.apps import new_secret, new_signing_key
from models.generations import Generation, GenerationStatus
from rivyahooks_protocol import contract
from rivyahooks_protocol.signatures import sign
from tasks.outbound_fanout import message_body

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "### Receiving results as webhooks"


def receiver_example() -> str:
    section = README.read_text().split(SECTION, 1)[1].split("\n### ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return str(code)


def signed(secrets: list[str], message_id: str, body: bytes) -> dict[str, str]:
    headers = sign(
        contract.SCHEME_STANDARD,
        secrets,
        body,
        webhook_id=message_id,
        timestamp=int(time.time()),
        private_keys=[new_signing_key()],  # a v1a entry too: the example must skip it
    )
    return {**headers, "content-type": "application/json"}


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[dict[str, Any]], str]:
    """Return the example's Flask test client, what it handled, and its secret."""
    secret = new_secret()
    monkeypatch.setenv("RIVYA_HOOKS_SECRET", secret)
    namespace: dict[str, Any] = {"__name__": "readme_receiver"}
    # The README's own code, run as an app developer would run it.
    exec(compile(receiver_example(), str(README), "exec"), namespace)  # noqa: S102
    handled: list[dict[str, Any]] = []
    namespace["handle"] = handled.append
    return namespace["app"].test_client(), handled, secret


def a_message(message_id: str) -> bytes:
    now = dt.datetime.now(dt.UTC)
    generation = Generation(
        task_id="task_readme",
        status=GenerationStatus.SUCCEEDED,
        model="rivya-image-1",
        first_seen_at=now,
        updated_at=now,
        results_stored_at=now,
        outputs=[],
    )
    return message_body(
        message_id, "result.ready", now, generation, None, "https://hooks.example.com"
    )


def test_the_example_verifies_and_deduplicates(receiver: Any) -> None:
    client, handled, secret = receiver
    body = a_message("msg_readme1")
    headers = signed([secret], "msg_readme1", body)

    assert client.post("/rivya-results", data=body, headers=headers).status_code == 204
    # A retry: the same id and body, signed again at its own time.
    again = signed([secret], "msg_readme1", body)
    assert client.post("/rivya-results", data=body, headers=again).status_code == 204

    assert handled == [json.loads(body)]
    assert handled[0]["data"]["task_id"] == "task_readme"


def test_the_example_accepts_a_rotation_and_refuses_a_forgery(receiver: Any) -> None:
    client, handled, secret = receiver
    body = a_message("msg_readme2")
    # During a rotation's grace period both secrets sign; the app still holds the old one.
    rotating = signed([new_secret(), secret], "msg_readme2", body)
    assert client.post("/rivya-results", data=body, headers=rotating).status_code == 204

    tampered = body.replace(b"task_readme", b"task_forged")
    forged = signed([secret], "msg_readme3", body)
    assert client.post("/rivya-results", data=tampered, headers=forged).status_code == 400
    not_ours = signed([new_secret()], "msg_readme4", body)
    assert client.post("/rivya-results", data=body, headers=not_ours).status_code == 400

    assert [m["id"] for m in handled] == ["msg_readme2"]
