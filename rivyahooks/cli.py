"""The `rivya-hooks` command: operator tools for the service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from sqlalchemy import Engine

from rivyahooks.commands.apps import apps
from rivyahooks.commands.events import events, replay, stats
from rivyahooks.commands.keys import keys
from rivyahooks.commands.relay import relay
from rivyahooks.commands.retention import purge
from rivyahooks.commands.rivya import doctor, reconcile, submit, sweep, webhooks
from rivyahooks.commands.settings import settings
from rivyahooks.output import Context, fail, pass_context
from rivyahooks.roles import SERVICE_ROLES


class Commands(click.Group):
    """The command group: a database that fails mid-command is one error line, not a traceback.

    Each command checks the database as it opens it; this catches what happens after, such
    as PostgreSQL going read-only or shutting down while a purge or a reconcile runs.
    """

    def invoke(self, ctx: click.Context) -> Any:
        from sqlalchemy.exc import SQLAlchemyError

        # Shared with the subcommands (they find it up the chain), so the error line below
        # can blot the password of the DATABASE_URL they used.
        ctx.ensure_object(Context)
        try:
            return super().invoke(ctx)
        except SQLAlchemyError as exc:
            fail(
                f"the database failed while the command ran: {_database_error(ctx, exc)}",
                "if it is down, read-only or restarting, run the command again once it is "
                "back; `rivya-hooks doctor` says what it sees",
            )


def _database_error(ctx: click.Context, exc: BaseException) -> str:
    """Return the driver's first error line, with DATABASE_URL's password blotted out."""
    from sqlalchemy.engine import make_url

    from models.connectivity import first_line

    command = ctx.find_object(Context)
    url = make_url(command.settings.database_url) if command is not None else None
    if url is None:
        return type(exc).__name__
    return first_line(exc, url)


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rivya-hooks", prog_name="rivya-hooks")
def main() -> None:
    """Receive, process and reconcile Rivya webhooks.

    Settings come from the environment (see README.md); every command has --help.
    Exit status: 0 done, 1 the work failed, 2 bad usage or configuration.
    """


@main.group()
def db() -> None:
    """Database schema commands."""


def _reachable_engine(ctx: Context) -> Engine:
    """Return the command's engine, or stop saying why the database cannot be reached."""
    from models.connectivity import connection_problem
    from rivyahooks.commands.wiring import open_engine

    engine = open_engine(ctx.settings)
    problem = connection_problem(engine)
    if problem is not None:
        fail(problem.cause, problem.next_step)
    return engine


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_context
def db_upgrade(ctx: Context, revision: str) -> None:
    """Apply database migrations (the Procfile release role runs this)."""
    from sqlalchemy.exc import SQLAlchemyError

    from models.connectivity import first_line
    from models.migrate import upgrade

    engine = _reachable_engine(ctx)
    try:
        upgrade(ctx.settings.database_url, revision)
    except SQLAlchemyError as exc:
        fail(
            f"the migration failed: {first_line(exc, engine.url)}",
            "fix the cause, then run again; `rivya-hooks db check` shows where the database is",
        )
    click.echo(f"database at revision {revision}")


@db.command("check")
@pass_context
def db_check(ctx: Context) -> None:
    """Exit 1 if the database is not at the latest migration or differs from the models."""
    from models.connectivity import schema_problem
    from models.migrate import drift, head_revision

    engine = _reachable_engine(ctx)
    problem = schema_problem(engine)
    if problem is not None:
        fail(problem.cause, problem.next_step)
    differences = drift(engine)
    if differences:
        fail(f"schema differs from the models: {differences}", "write a migration")
    click.echo(f"database at {head_revision()}, matches the models")


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

    from rivyahooks.demo.run import run_demo

    # Off a terminal (CI, scripts) nobody can press Ctrl-C: the run ends with its status.
    keep = keep_running and sys.stdin.isatty()
    raise SystemExit(run_demo(generations=generations, keep_running=keep))


@main.command("serve")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="var",
    show_default=True,
    envvar="DATA_DIR",
    help="Where the embedded SQLite database and broker, beat's schedule and (unless "
    "STORAGE_URL is set) the result files live.",
)
@click.option(
    "--roles",
    default=",".join(SERVICE_ROLES),
    show_default=True,
    help="Comma-separated roles to run here (several hosts: each runs what it needs; "
    "run beat on one host only).",
)
@click.option(
    "--stop-timeout",
    type=click.FloatRange(min=1),
    default=20,
    show_default=True,
    help="Seconds a stop waits for running requests and tasks before SIGKILL.",
)
@click.option("--no-migrate", is_flag=True, help="Skip the release step (migrations).")
def serve(data_dir: Path, roles: str, stop_timeout: float, no_migrate: bool) -> None:
    """Migrate, then run web, relay, worker, outbound and beat as one process tree until SIGTERM.

    Without DATABASE_URL and BROKER_URL: SQLite database and broker under --data-dir.
    A role that dies is restarted; one that dies 5 times in a minute stops everything
    (exit 1). SIGTERM or Ctrl-C stops web first, then relay, worker, outbound, beat (exit 0);
    a second one kills at once.
    """
    from rivyahooks.serve import ServeOptions
    from rivyahooks.serve import serve as run

    chosen = tuple(name.strip() for name in roles.split(",") if name.strip())
    unknown = sorted(set(chosen) - set(SERVICE_ROLES))
    if not chosen or unknown:
        raise click.BadParameter(
            f"choose from {', '.join(SERVICE_ROLES)} (got {', '.join(unknown) or 'none'})",
            param_hint="--roles",
        )
    ordered = tuple(name for name in SERVICE_ROLES if name in chosen)
    options = ServeOptions(
        data_dir=data_dir, roles=ordered, stop_timeout=stop_timeout, migrate=not no_migrate
    )
    raise SystemExit(run(options))


# Forwarded, so the simulator (a Flask app and its state) is imported only when it runs.
@main.command(
    "simulate",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.pass_context
def simulate(ctx: click.Context) -> None:
    """Run the Rivya simulator (`simulate --help` lists its fault knobs)."""
    from rivyahooks_simulator.cli import simulate as command

    command.main(ctx.args, prog_name=ctx.command_path)


for command in (
    apps,
    events,
    replay,
    stats,
    reconcile,
    submit,
    sweep,
    purge,
    webhooks,
    doctor,
    settings,
    relay,
    keys,
):
    main.add_command(command)
