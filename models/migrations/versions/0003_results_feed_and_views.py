"""results: feed positions, finished times, the stable views

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The view definitions as this revision creates them: a later change to models/sql_views.py
# needs its own migration, so they are copied here rather than imported.
GENERATIONS_VIEW = """
CREATE VIEW results_generations AS
SELECT
    task_id,
    model,
    status,
    reserved_credits,
    final_credits,
    error_code,
    error_message,
    anomaly,
    COALESCE(rivya_created_at, first_seen_at) AS created_at,
    submitted_at,
    finished_at,
    results_stored_at,
    rivya_updated_at AS updated_at,
    feed_position
FROM generations
"""

OUTPUTS_VIEW = """
CREATE VIEW results_outputs AS
SELECT
    task_id,
    "index" AS output_index,
    content_type,
    size_bytes,
    sha256,
    storage_key,
    stored_at
FROM generation_outputs
"""


def upgrade() -> None:
    op.create_table(
        "feed_counter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_counter")),
    )
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("finished_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("feed_position", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_generations_feed_position", ["feed_position"], unique=False)
        batch_op.create_index("ix_generations_status_id", ["status", "id"], unique=False)
    # Generations stored before the feed existed join it in the order they were first seen.
    op.execute("UPDATE generations SET feed_position = id")
    op.execute(
        "UPDATE generations SET finished_at = rivya_updated_at "
        "WHERE status IN ('succeeded', 'failed')"
    )
    op.execute(
        "INSERT INTO feed_counter (id, value) SELECT 1, COALESCE(MAX(id), 0) FROM generations"
    )
    op.execute(GENERATIONS_VIEW)
    op.execute(OUTPUTS_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW results_outputs")
    op.execute("DROP VIEW results_generations")
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_index("ix_generations_status_id")
        batch_op.drop_index("ix_generations_feed_position")
        batch_op.drop_column("feed_position")
        batch_op.drop_column("finished_at")
    op.drop_table("feed_counter")
