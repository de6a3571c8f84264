"""`rivya-hooks settings`: every variable the service reads, its value here and its meaning."""

from __future__ import annotations

import click

from rivyahooks.output import Context, echo_json, pass_context, table
from rivyahooks_foundation.settings import VARIABLES, markdown_table

_VARIABLE_LIST = "\n".join(f"{v.name}: {v.meaning.replace('`', '')}" for v in VARIABLES)


@click.command(
    epilog="Variables (a secret one NAME may also be given as NAME_FILE, a file's path):\n\n\b\n"
    + _VARIABLE_LIST
)
@click.option("--markdown", is_flag=True, help="Print the README's table of every variable.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def settings(ctx: Context, markdown: bool, as_json: bool) -> None:
    """Show every setting: its variable, the value in effect here, its default.

    Secret values are never shown, only whether they are set.
    """
    if markdown:
        click.echo(markdown_table())
        return
    current = ctx.settings
    rows = []
    for variable in VARIABLES:
        value = getattr(current, variable.field)
        if variable.secret:
            shown = "(set)" if value else "(not set)"
        else:
            shown = variable.format(value) or "(none)"
        rows.append(
            {"variable": variable.name, "value": shown, "default": variable.shown_default()}
        )
    if as_json:
        echo_json(rows)
        return
    click.echo(
        table(
            [[r["variable"], r["value"], r["default"]] for r in rows],
            ["variable", "value", "default"],
        )
    )
