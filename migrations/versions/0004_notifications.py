"""Notifications: routes to channels, a durable outbox, and the log of every attempt.

Revision ID: 0004_notifications
Revises: 0003_alerts
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP

revision: str = "0004_notifications"
down_revision: str | None = "0003_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = TIMESTAMP(timezone=True)
NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "notification_routes",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False, server_default=""),
        sa.Column("min_severity", sa.Text, nullable=False, server_default="warning"),
        sa.Column("profiles", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("device_group", sa.Text, nullable=False, server_default=""),
        sa.Column("max_per_device_hour", sa.Integer, nullable=False, server_default="20"),
        sa.Column("remind_every_s", sa.Integer, nullable=False, server_default="0"),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.CheckConstraint(
            "channel IN ('webhook', 'slack', 'email', 'log')", name="ck_routes_channel"
        ),
    )
    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("alert_id", sa.Text, nullable=False),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("route_id", sa.Text, nullable=False),
        sa.Column("transition", sa.Text, nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TZ, nullable=False, server_default=NOW),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", TZ, nullable=False, server_default=NOW),
        sa.Column("done_at", TZ),
        sa.UniqueConstraint("alert_id", "route_id", "transition", "at", name="uq_outbox_once"),
    )
    op.create_index(
        "ix_outbox_due",
        "notification_outbox",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "notification_log",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("outbox_id", sa.BigInteger, nullable=False),
        sa.Column("alert_id", sa.Text, nullable=False),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("response", sa.Text, nullable=False, server_default=""),
        sa.Column("at", TZ, nullable=False, server_default=NOW),
    )
    op.create_index("ix_notification_log_alert", "notification_log", ["alert_id", "at"])
    op.create_index("ix_notification_log_device", "notification_log", ["device_id", "at"])


def downgrade() -> None:
    op.drop_table("notification_log")
    op.drop_table("notification_outbox")
    op.drop_table("notification_routes")
