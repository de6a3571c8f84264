"""The generations pages: the list by status, and a generation with its outputs previewed."""

from __future__ import annotations

from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from rivyahooks_foundation.settings import Settings
from tests.receiver.console.conftest import READONLY_TOKEN, log_in, store_image_generation


def test_generation_page_previews_images_and_links_other_files(
    console_app: Flask, console_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    store_image_generation(console_settings, sessions)
    client = console_app.test_client()
    log_in(client, READONLY_TOKEN)
    page = client.get("/console/generations/task_img").text
    assert '<img src="/console/generations/task_img/outputs/0"' in page
    assert "/results/task_img/outputs/1" in page
    assert "4.5" in page
    listing = client.get("/console/generations?status=succeeded").text
    assert "task_img" in listing
