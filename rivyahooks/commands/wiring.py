"""Open the database and Rivya for a command, with errors an operator can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.connectivity import connection_problem, schema_problem
from models.data_keys import MissingDataKey, require_data_keys
from models.db import make_engine, make_session_factory
from rivyahooks.output import fail, fail_config
from rivyahooks_foundation.settings import Settings, SettingsError
from rivyahooks_protocol.client import RivyaClient

if TYPE_CHECKING:
    from tasks.runtime import Runtime


def open_engine(settings: Settings) -> Engine:
    """Return the command's engine, closed when the command ends."""
    engine = make_engine(
        settings.database_url,
        transaction_pooling=settings.transaction_pooling,
        data_keys=settings.data_encryption_keys,
    )
    # The command's connections close when the command ends, not whenever GC gets to them.
    click.get_current_context().call_on_close(engine.dispose)
    return engine


def open_database(settings: Settings) -> sessionmaker[Session]:
    """Return a session factory, or stop with the cause when the database is unusable."""
    engine = open_engine(settings)
    problem = connection_problem(engine) or schema_problem(engine)
    if problem is not None:
        fail(problem.cause, problem.next_step)
    try:
        require_data_keys(engine)
    except MissingDataKey as exc:
        fail_config(str(exc))
    return make_session_factory(engine)


def open_runtime(settings: Settings, *, rivya: bool = False) -> Runtime:
    """Return a worker's Runtime for the command (reconcile, sweep), checked and closed after.

    `rivya`: the command talks to Rivya, so an API key is required.
    """
    from tasks.runtime import Runtime

    if rivya:
        require_api_key(settings)
    open_database(settings)
    try:
        runtime = Runtime(settings)
    except SettingsError as exc:
        fail_config(str(exc))
    click.get_current_context().call_on_close(runtime.close)
    return runtime


def require_api_key(settings: Settings) -> None:
    """Stop with a configuration error (exit 2) when no Rivya API key is configured."""
    try:
        settings.require_api_key()
    except SettingsError as exc:
        fail_config(str(exc), "export RIVYA_API_KEY (or RIVYA_API_KEY_FILE), then run again")


def rivya_client(settings: Settings) -> RivyaClient:
    """Return an API client, or stop when no API key is configured."""
    from tasks.runtime import rivya_client as build

    require_api_key(settings)
    return build(settings)
