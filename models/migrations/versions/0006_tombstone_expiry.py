"""tombstone expiry: index event_tombstones by purge time

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 11:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("event_tombstones", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_event_tombstones_purged_at"), ["purged_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("event_tombstones", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_tombstones_purged_at"))
