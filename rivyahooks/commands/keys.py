"""Commands on the data keys encrypting stored bodies, headers and secrets: generate, rotate."""

from __future__ import annotations

import click

from rivyahooks.output import Context, echo_json, fail, fail_config, pass_context, progress


@click.group()
def keys() -> None:
    """Make and rotate DATA_ENCRYPTION_KEYS (the first key encrypts, every key decrypts)."""


@keys.command("generate")
def generate() -> None:
    """Print a new random key for DATA_ENCRYPTION_KEYS, and its key id on stderr.

    To start encrypting, set it as the only key. To rotate, put it first (the old key
    after it) in every role, restart them, run `rivya-hooks keys rotate`, then drop the old key.
    """
    import base64

    from models.encryption import generate_key, key_id

    key = generate_key()
    click.echo(key)
    click.echo(f"key id {key_id(base64.b64decode(key))}", err=True)


@keys.command("rotate")
@click.option("--dry-run", is_flag=True, help="Count what would be re-encrypted; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option(
    "--batch",
    type=click.IntRange(1, 10_000),
    default=500,
    show_default=True,
    help="Rows per transaction.",
)
@click.option(
    "--after",
    type=click.IntRange(0),
    default=0,
    help="Resume past this event row id (the last one an interrupted run printed).",
)
@pass_context
def rotate(ctx: Context, dry_run: bool, as_json: bool, batch: int, after: int) -> None:
    """Re-encrypt every stored value under the first key of DATA_ENCRYPTION_KEYS.

    Safe while the service runs: each row is rewritten only if it still holds what was read
    (a compare-and-set), in short transactions of --batch rows. Running it again resumes:
    rows already under the first key are skipped. At the end, the ids of keys no stored
    value uses any more are forgotten; the roles then start without those keys. Plain-text
    rows (stored before encryption was on) are encrypted too.
    """
    from sqlalchemy import Engine
    from sqlalchemy.exc import SQLAlchemyError

    from models.connectivity import first_line
    from models.key_rotation import RotationReport
    from models.key_rotation import rotate as run
    from rivyahooks.commands.wiring import open_database

    settings = ctx.settings
    if not settings.data_encryption_keys:
        fail_config(
            "DATA_ENCRYPTION_KEYS is not set: there is no key to encrypt with",
            "make one with `rivya-hooks keys generate`, set it first in DATA_ENCRYPTION_KEYS",
        )
    with open_database(settings)() as session:  # checks the database and the keys first
        engine = session.get_bind()
    assert isinstance(engine, Engine)

    def said(report: RotationReport) -> None:
        progress(
            f"{report.checked} rows checked, {report.resealed} re-encrypted, "
            f"event rows up to id {report.last_event_row}"
        )

    try:
        report = run(engine, batch=batch, dry_run=dry_run, after=after, on_batch=said)
    except SQLAlchemyError as exc:
        fail(
            f"rotation stopped: {first_line(exc, engine.url)}",
            "run it again (done rows are skipped), or with --after and the last id shown",
        )
    if as_json:
        echo_json(report.as_dict())
    else:
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        click.echo(
            f"{verb} {report.resealed} of {report.checked} rows under key id {report.sealing_id}"
        )
        if report.changed_meanwhile:
            click.echo(f"{report.changed_meanwhile} rows changed meanwhile: run rotate again")
        for kid in report.retired:
            click.echo(f"key id {kid}: no longer used; it can be removed from DATA_ENCRYPTION_KEYS")
        for kid in report.still_used:
            click.echo(f"key id {kid}: still used by some rows (written meanwhile?)")
    if report.still_used or report.changed_meanwhile:
        fail(
            "some rows are not under the first key yet",
            "check every role runs with the new key first, then run `rivya-hooks keys rotate` "
            "again",
        )
