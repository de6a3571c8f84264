"""outbound webhooks: apps, the messages pushed to them, their deliveries and attempts

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UTC = models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("previous_secret", sa.LargeBinary(), nullable=True),
        sa.Column("previous_secret_until", UTC, nullable=True),
        sa.Column("signing_key", sa.LargeBinary(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(length=300), nullable=True),
        sa.Column("disabled_at", UTC, nullable=True),
        sa.Column("failing_since", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apps")),
        sa.UniqueConstraint("name", name=op.f("uq_apps_name")),
    )
    op.create_table(
        "outbound_messages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("task_id", sa.String(length=255), nullable=False),
        sa.Column("feed_position", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_messages")),
    )
    op.create_index(
        op.f("ix_outbound_messages_task_id"), "outbound_messages", ["task_id"], unique=False
    )
    op.create_index(
        op.f("ix_outbound_messages_created_at"), "outbound_messages", ["created_at"], unique=False
    )
    op.create_table(
        "outbound_deliveries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("app_id", sa.String(length=32), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "enqueued",
                "sending",
                "delivered",
                "failed",
                name="delivery_status",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC, nullable=True),
        sa.Column("enqueued_at", UTC, nullable=True),
        sa.Column("lease_until", UTC, nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("finished_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
            name=op.f("fk_outbound_deliveries_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["outbound_messages.id"],
            name=op.f("fk_outbound_deliveries_message_id_outbound_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_deliveries")),
        sa.UniqueConstraint("message_id", "app_id", name="uq_outbound_deliveries_message_app"),
    )
    op.create_index(
        "ix_outbound_deliveries_status_due",
        "outbound_deliveries",
        ["status", "next_attempt_at"],
        unique=False,
    )
    op.create_index(
        "ix_outbound_deliveries_app_status", "outbound_deliveries", ["app_id", "status"]
    )
    op.create_index("ix_outbound_deliveries_finished_at", "outbound_deliveries", ["finished_at"])
    op.create_table(
        "outbound_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "delivery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("app_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("attempted_at", UTC, nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("response_excerpt", sa.Text(), nullable=True),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["outbound_deliveries.id"],
            name=op.f("fk_outbound_attempts_delivery_id_outbound_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_attempts")),
    )
    op.create_index(op.f("ix_outbound_attempts_delivery_id"), "outbound_attempts", ["delivery_id"])
    op.create_index(
        "ix_outbound_attempts_app_time", "outbound_attempts", ["app_id", "attempted_at"]
    )
    op.create_table(
        "outbound_cursor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_cursor")),
    )


def downgrade() -> None:
    op.drop_table("outbound_cursor")
    op.drop_table("outbound_attempts")
    op.drop_table("outbound_deliveries")
    op.drop_table("outbound_messages")
    op.drop_table("apps")
