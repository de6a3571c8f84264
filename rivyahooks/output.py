"""What every command shares: settings from the environment, exit codes, JSON, tables, progress."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any, NoReturn

import click

from rivyahooks_foundation import faultpoints
from rivyahooks_foundation.settings import EXIT_CONFIG, FIX_SETTING, Settings, SettingsError

# Exit codes: 0 done, 1 the work failed, 2 bad usage or configuration (EXIT_CONFIG).
EXIT_FAILED = 1


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
            # Commands run lifecycle steps too (reconcile, sweep, the relay).
            faultpoints.arm(self._settings.fault_points_dir)
        return self._settings


pass_context = click.make_pass_decorator(Context, ensure=True)


def fail_config(message: str, next_step: str = FIX_SETTING) -> NoReturn:
    """Stop with a configuration error, what to do next, and exit code 2."""
    click.echo(f"error: {message}", err=True)
    click.echo(f"next: {next_step}", err=True)
    sys.exit(EXIT_CONFIG)


def fail(message: str, next_step: str | None = None) -> NoReturn:
    """Stop with a failure, its cause and what to do next; exit code 1."""
    click.echo(f"error: {message}", err=True)
    if next_step:
        click.echo(f"next: {next_step}", err=True)
    sys.exit(EXIT_FAILED)


def echo_json(document: Any) -> None:
    """Print one JSON document for scripts."""
    click.echo(json.dumps(document, indent=2, sort_keys=True, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def progress(message: str) -> None:
    """Show progress on a terminal (stderr), so piped stdout stays clean."""
    if sys.stderr.isatty():
        click.echo(f"… {message}", err=True)


def table(rows: list[list[Any]], headers: list[str]) -> str:
    """Return rows as a plain aligned text table."""
    text = [[str(c) if c is not None else "-" for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in text]
    return "\n".join(line.rstrip() for line in lines)


def parse_since(value: str | None) -> dt.datetime | None:
    """Parse an ISO-8601 time given on the command line (UTC when no zone is given)."""
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
