"""outbox, claims and attempts

The inbox becomes an outbox: `next_attempt_at` says when the relay publishes a `received`
or `failed` event; a claim is `claim_token` + `lease_expires_at`; `event_attempts` keeps one
row per processing attempt.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 07:28:41.293644
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DUE_PREDICATE = "status IN ('received', 'failed')"
# The sweeper's old rule: an event `processing` for longer than the default visibility
# timeout was given up on. Rows mid-attempt at upgrade time keep that much time.
OLD_VISIBILITY = dt.timedelta(hours=1)


def upgrade() -> None:
    op.create_table(
        "event_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=False),
        sa.Column("started_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "outcome",
            sa.Enum(
                "processed",
                "ignored",
                "failed",
                "dead",
                "expired",
                name="attempt_outcome",
                native_enum=False,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("retry_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["webhook_events.event_id"],
            name=op.f("fk_event_attempts_event_id_webhook_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_attempts")),
        sa.UniqueConstraint("event_id", "number", name="uq_event_attempts_event_number"),
    )
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("next_attempt_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("claim_token", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("lease_expires_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_webhook_events_due",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text(DUE_PREDICATE),
            sqlite_where=sa.text(DUE_PREDICATE),
        )

    # Events waiting at upgrade time get a due time, or the relay would never see them.
    op.execute(
        sa.text(
            "UPDATE webhook_events SET next_attempt_at = updated_at "
            "WHERE status IN ('received', 'failed')"
        )
    )
    events = sa.table(
        "webhook_events",
        sa.column("id", sa.BigInteger()),
        sa.column("status", sa.String()),
        sa.column("updated_at", models.base.UTCDateTime(timezone=True)),
        sa.column("lease_expires_at", models.base.UTCDateTime(timezone=True)),
    )
    connection = op.get_bind()
    running = connection.execute(
        sa.select(events.c.id, events.c.updated_at).where(events.c.status == "processing")
    ).all()
    for event_pk, updated_at in running:
        connection.execute(
            events.update()
            .where(events.c.id == event_pk)
            .values(lease_expires_at=updated_at + OLD_VISIBILITY)
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_webhook_events_due",
            postgresql_where=sa.text(DUE_PREDICATE),
            sqlite_where=sa.text(DUE_PREDICATE),
        )
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("claim_token")
        batch_op.drop_column("next_attempt_at")

    op.drop_table("event_attempts")
