"""Anomaly detection: anomaly episodes and the detector model registry.

Revision ID: 0002_anomalies
Revises: 0001_spine
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

revision: str = "0002_anomalies"
down_revision: str | None = "0001_spine"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = TIMESTAMP(timezone=True)
NOW = sa.text("now()")
EMPTY = sa.text("'{}'::jsonb")


def upgrade() -> None:
    op.create_table(
        "anomalies",
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("detector", sa.Text, nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("ended_at", TZ),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("expected", sa.Float),
        sa.Column("observed", sa.Float),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("device_id", "detector", "metric", "started_at"),
    )
    op.create_index("ix_anomalies_started_at", "anomalies", ["started_at"])
    op.create_index(
        "ix_anomalies_open",
        "anomalies",
        ["device_id"],
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.create_table(
        "model_versions",
        sa.Column("version", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("config", JSONB, nullable=False),
        sa.Column("shared_state", JSONB, nullable=False, server_default=EMPTY),
        sa.Column("evaluations", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("created_at", TZ, nullable=False, server_default=NOW),
        sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
    )


def downgrade() -> None:
    op.drop_table("model_versions")
    op.drop_index("ix_anomalies_open", table_name="anomalies")
    op.drop_index("ix_anomalies_started_at", table_name="anomalies")
    op.drop_table("anomalies")
