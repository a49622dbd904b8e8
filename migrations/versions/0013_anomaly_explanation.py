"""Anomaly explanation: a relation anomaly's expected and observed value for each metric it names.

Revision ID: 0013_anomaly_explanation
Revises: 0012_twin_history
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013_anomaly_explanation"
down_revision: str | None = "0012_twin_history"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("anomalies", sa.Column("explanation", postgresql.JSONB(astext_type=sa.Text())))


def downgrade() -> None:
    op.drop_column("anomalies", "explanation")
