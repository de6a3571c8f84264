"""`rivya-hooks purge`: forget old finished events (keeping tombstones), old outbound
messages and old results."""

from __future__ import annotations

import datetime as dt
import re

import click

from rivyahooks.commands.wiring import open_database
from rivyahooks.output import Context, echo_json, pass_context, progress

_AGE = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
# Shorter than this is almost certainly a typo (30m for 30d), and purging is not undone.
MINIMUM_AGE = dt.timedelta(days=1)


class Age(click.ParamType):  # type: ignore[type-arg]
    """An age such as 30d, 36h or 90m."""

    name = "age"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> dt.timedelta:
        if isinstance(value, dt.timedelta):
            return value
        match = _AGE.match(str(value))
        if match is None:
            self.fail(f"{value!r} is not an age like 30d, 36h or 90m", param, ctx)
        age = dt.timedelta(**{_UNITS[match[2]]: int(match[1])})
        if age < MINIMUM_AGE:
            self.fail(f"{value!r} is less than a day; purging cannot be undone", param, ctx)
        return age


def _setting_age(days: int) -> dt.timedelta | None:
    return dt.timedelta(days=days) if days else None


@click.command()
@click.option(
    "--older-than",
    type=Age(),
    help="Purge finished events last changed, and outbound messages every delivery of which "
    "finished, longer ago than this [default: RETENTION_EVENTS_DAYS].",
)
@click.option(
    "--results-older-than",
    type=Age(),
    help="Also purge finished generations' files and rows this old "
    "[default: RETENTION_RESULTS_DAYS; 0 keeps them].",
)
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 10_000))
@pass_context
def purge(
    ctx: Context,
    older_than: dt.timedelta | None,
    results_older_than: dt.timedelta | None,
    dry_run: bool,
    as_json: bool,
    batch_size: int,
) -> None:
    """Delete old processed and ignored events, leaving id-only tombstones, and old outbound
    messages with their deliveries and attempts.

    Unfinished, dead and quarantined events are never purged, nor an outbound message with
    a delivery still open or finished within the age. A tombstone keeps a late
    redelivery of a purged event a duplicate; it goes itself once Rivya can no longer send
    that event again (31 days after the purge). Beat runs the same purge every
    RETENTION_INTERVAL_SECONDS with the RETENTION_* settings.
    """
    from storage import open_storage
    from tasks.retention import purge as run

    settings = ctx.settings
    events = older_than or _setting_age(settings.retention_events_days)
    results = results_older_than or _setting_age(settings.retention_results_days)
    sessions = open_database(settings)
    summary = run(
        sessions,
        open_storage(settings),
        events_older_than=events,
        results_older_than=results,
        dry_run=dry_run,
        batch=batch_size,
        say=progress,
    )
    if as_json:
        echo_json(summary.as_dict())
        return
    prefix = "dry run: would purge" if dry_run else "purged"
    if events is None:
        click.echo("events kept (RETENTION_EVENTS_DAYS is 0 and no --older-than)")
    else:
        click.echo(
            f"{prefix} {summary.events_purged} events last changed before {summary.events_before}"
        )
        click.echo(
            f"{prefix} {summary.tombstones_expired} tombstones of events purged before "
            f"{summary.tombstones_before} (Rivya no longer sends those events again)"
        )
        click.echo(
            f"{prefix} {summary.outbound_messages_purged} outbound messages "
            f"({summary.outbound_deliveries_purged} deliveries, "
            f"{summary.outbound_attempts_purged} attempts) made before "
            f"{summary.outbound_before}, every delivery finished"
        )
    if results is not None:
        click.echo(
            f"{prefix} {summary.generations_purged} generations, {summary.files_removed} files "
            f"({summary.bytes_removed} bytes) last changed before {summary.results_before}"
        )
