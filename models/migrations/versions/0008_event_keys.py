"""event keys: every accepted event id, kept as a tombstone once purged (replaces event_tombstones)

A purge that commits between a redelivery's tombstone check and its unique-index check
let the redelivery in. Every store now inserts the event's key first and the purge never
deletes a key, so the primary key refuses the redelivery whatever the timing.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PURGED = "purged_at IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "event_keys",
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("purged_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_event_keys")),
    )
    op.create_index(
        "ix_event_keys_purged_at",
        "event_keys",
        ["purged_at"],
        unique=False,
        postgresql_where=sa.text(PURGED),
        sqlite_where=sa.text(PURGED),
    )
    # Stored events first, then the tombstones of events no longer stored (an event the old
    # race let in again has both: it is stored, so its key is not a tombstone).
    op.execute("INSERT INTO event_keys (event_id) SELECT event_id FROM webhook_events")
    op.execute(
        "INSERT INTO event_keys (event_id, purged_at) SELECT event_id, purged_at"
        " FROM event_tombstones WHERE event_id NOT IN (SELECT event_id FROM webhook_events)"
    )
    op.drop_table("event_tombstones")


def downgrade() -> None:
    op.create_table(
        "event_tombstones",
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("purged_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_event_tombstones")),
    )
    op.create_index(
        op.f("ix_event_tombstones_purged_at"), "event_tombstones", ["purged_at"], unique=False
    )
    op.execute(
        "INSERT INTO event_tombstones (event_id, purged_at) SELECT event_id, purged_at"
        " FROM event_keys WHERE purged_at IS NOT NULL"
    )
    op.drop_index("ix_event_keys_purged_at", table_name="event_keys")
    op.drop_table("event_keys")
