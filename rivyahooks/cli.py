"""The `rivya-hooks` command: operator tools for the service."""

from __future__ import annotations

import click

from rivyahooks.commands.events import events, replay, stats
from rivyahooks.commands.rivya import doctor, reconcile, submit, sweep, webhooks
from rivyahooks.commands.settings import settings
from rivyahooks.console import Context, fail, pass_context
from rivyahooks.rivya.simulator.cli import simulate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Receive, process and reconcile Rivya webhooks.

    Settings come from the environment (see README.md); every command has --help.
    Exit status: 0 done, 1 the work failed, 2 bad usage or configuration.
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
    click.get_current_context().call_on_close(engine.dispose)
    current, head = current_revision(engine), head_revision()
    if current != head:
        fail(f"database is at {current}, code expects {head}", "run `rivya-hooks db upgrade`")
    differences = drift(engine)
    if differences:
        fail(f"schema differs from the models: {differences}", "write a migration")
    click.echo(f"database at {head}, matches the models")


@main.command("demo")
@click.option("--generations", default=50, show_default=True, help="Generations to create.")
@click.option(
    "--keep-running",
    is_flag=True,
    help="After a successful run on a terminal, keep the service up for the console "
    "(its URL and tokens are printed) until Ctrl-C.",
)
def demo(generations: int, keep_running: bool) -> None:
    """Run the whole service end to end on embedded defaults and print what happened."""
    import sys

    from rivyahooks.demo import run_demo

    # Off a terminal (CI, scripts) nobody can press Ctrl-C: the run ends with its status.
    keep = keep_running and sys.stdin.isatty()
    raise SystemExit(run_demo(generations=generations, keep_running=keep))


for command in (
    events,
    replay,
    stats,
    reconcile,
    submit,
    sweep,
    webhooks,
    doctor,
    settings,
    simulate,
):
    main.add_command(command)
