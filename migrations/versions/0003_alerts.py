"""Alerts: rules, alerts with their lifecycle, and the timeline of every change.

Revision ID: 0003_alerts
Revises: 0002_anomalies
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

revision: str = "0003_alerts"
down_revision: str | None = "0002_anomalies"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = TIMESTAMP(timezone=True)
NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("definition", JSONB, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("builtin", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("rule_id", sa.Text, nullable=False),
        sa.Column("rule_type", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("peak_severity", sa.Text, nullable=False),
        sa.Column("occurrences", sa.Integer, nullable=False, server_default="1"),
        sa.Column("first_seen", TZ, nullable=False),
        sa.Column("last_seen", TZ, nullable=False),
        sa.Column("observed", sa.Float),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("acknowledged_at", TZ),
        sa.Column("acknowledged_by", sa.Text),
        sa.Column("assigned_to", sa.Text),
        sa.Column("resolved_at", TZ),
        sa.Column("resolved_by", sa.Text),
        sa.Column("created_at", TZ, nullable=False, server_default=NOW),
        sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
        sa.CheckConstraint(
            "status IN ('new', 'acknowledged', 'resolved')", name="ck_alerts_status"
        ),
    )
    op.create_index("ix_alerts_status_severity", "alerts", ["status", "severity"])
    op.create_index("ix_alerts_device_status", "alerts", ["device_id", "status"])
    op.create_index("ix_alerts_first_seen", "alerts", ["first_seen"])
    op.create_table(
        "alert_timeline",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column(
            "alert_id", sa.Text, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("at", TZ, nullable=False),
        sa.Column("transition", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("by", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.UniqueConstraint("alert_id", "transition", "at", "by", name="uq_alert_timeline_step"),
    )
    op.create_index("ix_alert_timeline_alert", "alert_timeline", ["alert_id", "at"])


def downgrade() -> None:
    op.drop_table("alert_timeline")
    op.drop_table("alerts")
    op.drop_table("alert_rules")
