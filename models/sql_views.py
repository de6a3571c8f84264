"""The stable SQL views for apps that read the database directly.

The tables may change shape between versions; the views keep their names and columns (a new
column is only ever added at the end). Migration 0005 creates them. They are not part of the
models' metadata, so the drift check skips them by name. A later migration that rebuilds
`generations` or `generation_outputs` on SQLite (batch mode) must drop the views first and
create them again after: SQLite refuses to rename a table a view depends on.
"""

from __future__ import annotations

GENERATIONS_VIEW = "results_generations"
OUTPUTS_VIEW = "results_outputs"
VIEWS = frozenset({GENERATIONS_VIEW, OUTPUTS_VIEW})


def not_a_view(name: str | None, type_: str, *_: object) -> bool:
    """Alembic's include_name hook: compare tables, never our views."""
    return not (type_ == "table" and name in VIEWS)
