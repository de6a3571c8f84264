"""Stored outputs served to the console's session: images inline, the rest as downloads.

Each is sandboxed, and only a logged-in operator gets one.
"""

from __future__ import annotations

from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from rivyahooks_foundation.settings import Settings
from tests.receiver.console.conftest import PNG, READONLY_TOKEN, log_in, store_image_generation


def test_outputs_are_served_safely_and_only_after_a_login(
    console_app: Flask, console_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    store_image_generation(console_settings, sessions)
    client = console_app.test_client()
    assert client.get("/console/generations/task_img/outputs/0").status_code == 302
    log_in(client, READONLY_TOKEN)
    with client.get("/console/generations/task_img/outputs/0") as image:
        assert image.status_code == 200
        assert image.data == PNG
        assert image.headers["Content-Type"] == "image/png"
        assert "sandbox" in image.headers["Content-Security-Policy"]
    with client.get("/console/generations/task_img/outputs/1") as svg:
        assert svg.headers["Content-Type"] == "application/octet-stream"
        assert svg.headers["Content-Disposition"].startswith("attachment")
    assert client.get("/console/generations/task_img/outputs/7").status_code == 404
