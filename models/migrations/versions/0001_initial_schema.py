"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27 02:29:12.594534
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "generations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task_id", sa.String(length=255), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "processing",
                "succeeded",
                "failed",
                name="generation_status",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "reserved_credits", sa.Numeric(precision=14, scale=4, asdecimal=False), nullable=True
        ),
        sa.Column(
            "final_credits", sa.Numeric(precision=14, scale=4, asdecimal=False), nullable=True
        ),
        sa.Column("rivya_created_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("rivya_updated_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error_code", sa.String(length=100), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("anomaly", sa.Text(), nullable=True),
        sa.Column("results_stored_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_polled_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("first_seen_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generations")),
        sa.UniqueConstraint("task_id", name=op.f("uq_generations_task_id")),
    )
    op.create_table(
        "reconcile_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("checkpoint", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("running_since", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_summary", sa.String(length=2000), nullable=True),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_reconcile_state")),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=True),
        sa.Column("task_id", sa.String(length=255), nullable=True),
        sa.Column("api_version", sa.String(length=32), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column(
            "source",
            sa.Enum(
                "webhook", "reconcile", "replay", name="event_source", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("secret_fingerprint", sa.String(length=16), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "received",
                "enqueued",
                "processing",
                "processed",
                "ignored",
                "failed",
                "dead",
                "quarantined",
                name="event_status",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("received_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("enqueued_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_webhook_events_event_id")),
    )
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_events_status_updated_at", ["status", "updated_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_webhook_events_task_id"), ["task_id"], unique=False)

    op.create_table(
        "generation_outputs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task_id", sa.String(length=255), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=1024), nullable=False),
        sa.Column("source_host", sa.String(length=255), nullable=False),
        sa.Column("stored_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["generations.task_id"],
            name=op.f("fk_generation_outputs_task_id_generations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generation_outputs")),
        sa.UniqueConstraint("task_id", "index", name="uq_generation_outputs_task_index"),
    )


def downgrade() -> None:
    op.drop_table("generation_outputs")
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_events_task_id"))
        batch_op.drop_index("ix_webhook_events_status_updated_at")

    op.drop_table("webhook_events")
    op.drop_table("reconcile_state")
    op.drop_table("generations")
