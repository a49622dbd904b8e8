"""Maintenance reports: daily, per device and for the fleet, as JSON.

Revision ID: 0008_reports
Revises: 0007_rollups
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008_reports"
down_revision: str | None = "0007_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "maintenance_reports",
        sa.Column("report_id", sa.Text(), nullable=False),
        sa.Column("report_type", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=True),
        sa.Column(
            "generated_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("content", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.CheckConstraint("report_type IN ('DAILY')", name="ck_maintenance_reports_type"),
        sa.PrimaryKeyConstraint("report_id"),
    )
    op.create_index(
        "ix_maintenance_reports_day", "maintenance_reports", ["day", "report_type"], unique=False
    )
    op.create_index(
        "ix_maintenance_reports_device", "maintenance_reports", ["device_id", "day"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_maintenance_reports_device", table_name="maintenance_reports")
    op.drop_index("ix_maintenance_reports_day", table_name="maintenance_reports")
    op.drop_table("maintenance_reports")
