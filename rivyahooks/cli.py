"""The `rivya-hooks` command: operator tools for the service."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from rivyahooks.settings import Settings, SettingsError

# Exit codes: 0 done, 1 the work failed, 2 bad usage or configuration (click's own code).
EXIT_FAILED = 1
EXIT_CONFIG = 2


class Context:
    """Settings, built once per command from the environment."""

    def __init__(self) -> None:
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = Settings.from_env()
            except SettingsError as exc:
                fail_config(str(exc))
        return self._settings


def fail_config(message: str) -> NoReturn:
    """Stop with a configuration error and exit code 2."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_CONFIG)


def fail(message: str, next_step: str | None = None) -> NoReturn:
    """Stop with a failure, its cause and what to do next; exit code 1."""
    click.echo(f"error: {message}", err=True)
    if next_step:
        click.echo(f"next: {next_step}", err=True)
    sys.exit(EXIT_FAILED)


pass_context = click.make_pass_decorator(Context, ensure=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Receive, process and reconcile Rivya webhooks.

    Settings come from the environment (see README.md); every command has --help.
    """


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_context
def db_upgrade(ctx: Context, revision: str) -> None:
    """Apply database migrations (the Procfile release role runs this)."""
    from sqlalchemy.exc import OperationalError

    from models.migrate import upgrade

    try:
        upgrade(ctx.settings.database_url, revision)
    except OperationalError as exc:
        fail(
            f"cannot reach the database: {exc.orig.__class__.__name__}",
            "check DATABASE_URL and that the database server is running",
        )
    click.echo(f"database at revision {revision}")


@db.command("check")
@pass_context
def db_check(ctx: Context) -> None:
    """Exit 1 if the database is not at the latest migration or differs from the models."""
    from models.db import make_engine
    from models.migrate import current_revision, drift, head_revision

    engine = make_engine(ctx.settings.database_url)
    current, head = current_revision(engine), head_revision()
    if current != head:
        fail(f"database is at {current}, code expects {head}", "run `rivya-hooks db upgrade`")
    differences = drift(engine)
    if differences:
        fail(f"schema differs from the models: {differences}", "write a migration")
    click.echo(f"database at {head}, matches the models")


def _register_commands() -> None:
    # Commands that live with the code they drive; each module adds itself to `main`.
    from rivyahooks.rivya.simulator.cli import simulate

    main.add_command(simulate)


_register_commands()
