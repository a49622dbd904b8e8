"""Rollups: hourly and daily downsampled telemetry, 15-minute performance metrics, and the
bookkeeping of what is rolled up.

Revision ID: 0007_rollups
Revises: 0006_recommendations
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_rollups"
down_revision: str | None = "0006_recommendations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_telemetry_ts_brin", "telemetry", ["ts"], postgresql_using="brin")
    op.create_table(
        "performance_metrics",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("window_start", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("window_end", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.Column("average_load", sa.Float(), nullable=True),
        sa.Column("average_temperature", sa.Float(), nullable=True),
        sa.Column("average_vibration", sa.Float(), nullable=True),
        sa.Column("uptime_pct", sa.Float(), nullable=False),
        sa.Column("anomaly_count", sa.Integer(), nullable=False),
        sa.Column("efficiency_rating", sa.Float(), nullable=False),
        sa.Column(
            "metrics",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("device_id", "window_start", name="pk_performance_metrics"),
    )
    op.create_index(
        "ix_performance_metrics_window", "performance_metrics", ["window_start"], unique=False
    )
    op.create_table(
        "rollup_dirty",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("bucket", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "bucket", name="pk_rollup_dirty"),
    )
    op.create_table(
        "rollup_state",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("done_until", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "telemetry_daily",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("bucket", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("mean", sa.Float(), nullable=False),
        sa.Column("min", sa.Float(), nullable=False),
        sa.Column("max", sa.Float(), nullable=False),
        sa.Column("sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "bucket", "metric", name="pk_telemetry_daily"),
    )
    op.create_index("ix_telemetry_daily_bucket", "telemetry_daily", ["bucket"], unique=False)
    op.create_table(
        "telemetry_hourly",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("bucket", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("mean", sa.Float(), nullable=False),
        sa.Column("min", sa.Float(), nullable=False),
        sa.Column("max", sa.Float(), nullable=False),
        sa.Column("sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "bucket", "metric", name="pk_telemetry_hourly"),
    )
    op.create_index("ix_telemetry_hourly_bucket", "telemetry_hourly", ["bucket"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_telemetry_ts_brin", table_name="telemetry")
    op.drop_index("ix_telemetry_hourly_bucket", table_name="telemetry_hourly")
    op.drop_table("telemetry_hourly")
    op.drop_index("ix_telemetry_daily_bucket", table_name="telemetry_daily")
    op.drop_table("telemetry_daily")
    op.drop_table("rollup_state")
    op.drop_table("rollup_dirty")
    op.drop_index("ix_performance_metrics_window", table_name="performance_metrics")
    op.drop_table("performance_metrics")
