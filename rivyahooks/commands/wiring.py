"""Open the database and the broker for a command, with errors an operator can act on."""

from __future__ import annotations

from collections.abc import Callable

import click
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from models.db import make_engine, make_session_factory
from rivyahooks.console import fail
from rivyahooks.rivya.client import RivyaClient
from rivyahooks.settings import Settings, SettingsError


def open_database(settings: Settings) -> sessionmaker[Session]:
    """Return a session factory, or stop with the cause when the database is unusable."""
    engine = make_engine(settings.database_url)
    # The command's connections close when the command ends, not whenever GC gets to them.
    click.get_current_context().call_on_close(engine.dispose)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1 FROM webhook_events LIMIT 1"))
    except SQLAlchemyError as exc:
        fail(
            f"the database is not usable ({type(exc).__name__})",
            "check DATABASE_URL, then run `rivya-hooks db upgrade`",
        )
    return make_session_factory(engine)


def broker_sender(settings: Settings) -> Callable[[str], None]:
    """Return a function that enqueues `events.process` for an event id."""
    from tasks.celery_app import create_celery
    from tasks.events import send_process_event

    app = create_celery(settings)
    click.get_current_context().call_on_close(app.close)
    return lambda event_id: send_process_event(app, event_id)


def rivya_client(settings: Settings) -> RivyaClient:
    """Return an API client, or stop when no API key is configured."""
    try:
        settings.require_api_key()
    except SettingsError as exc:
        fail(str(exc))
    return RivyaClient.from_settings(settings)
