"""Open the database and the broker for a command, with errors an operator can act on."""

from __future__ import annotations

from collections.abc import Callable

import click
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.connectivity import connection_problem, schema_problem
from models.db import make_engine, make_session_factory
from rivyahooks.console import fail, fail_config
from rivyahooks.rivya.client import RivyaClient
from rivyahooks.settings import Settings, SettingsError


def open_engine(settings: Settings) -> Engine:
    """Return the command's engine, closed when the command ends."""
    engine = make_engine(settings.database_url)
    # The command's connections close when the command ends, not whenever GC gets to them.
    click.get_current_context().call_on_close(engine.dispose)
    return engine


def open_database(settings: Settings) -> sessionmaker[Session]:
    """Return a session factory, or stop with the cause when the database is unusable."""
    engine = open_engine(settings)
    problem = connection_problem(engine) or schema_problem(engine)
    if problem is not None:
        fail(problem.cause, problem.next_step)
    return make_session_factory(engine)


def broker_sender(settings: Settings) -> Callable[[str], None]:
    """Return a function that enqueues `events.process` for an event id."""
    from tasks.celery_app import create_celery
    from tasks.events import send_process_event

    app = create_celery(settings)
    click.get_current_context().call_on_close(app.close)
    return lambda event_id: send_process_event(app, event_id)


def require_api_key(settings: Settings) -> None:
    """Stop with a configuration error (exit 2) when no Rivya API key is configured."""
    try:
        settings.require_api_key()
    except SettingsError as exc:
        fail_config(str(exc), "export RIVYA_API_KEY (or RIVYA_API_KEY_FILE), then run again")


def rivya_client(settings: Settings) -> RivyaClient:
    """Return an API client, or stop when no API key is configured."""
    require_api_key(settings)
    return RivyaClient.from_settings(settings)
