"""data keys: the ids of the keys stored rows may be encrypted under

Bodies, headers and the console's secrets are sealed under DATA_ENCRYPTION_KEYS when it is
set (their columns keep their types). Every process registers its sealing key's id here at
start, so a start with keys that cannot open the stored rows stops with one read.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("registered_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_data_keys")),
    )


def downgrade() -> None:
    op.drop_table("data_keys")
