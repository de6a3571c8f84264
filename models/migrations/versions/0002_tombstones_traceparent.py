"""event tombstones (ids of purged events, still duplicates); the traceparent of an event

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 07:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_tombstones",
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("purged_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_event_tombstones")),
    )
    with op.batch_alter_table("webhook_events") as batch:
        batch.add_column(sa.Column("traceparent", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_events") as batch:
        batch.drop_column("traceparent")
    op.drop_table("event_tombstones")
