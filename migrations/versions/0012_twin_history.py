"""Twin history: past snapshots, so that the API can show a twin as it was at a given time.

One row per device and history interval; the detectors' baselines are left out (a replay
needs the values, counters and usage figures, not the models).

Revision ID: 0012_twin_history
Revises: 0011_api_keys
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012_twin_history"
down_revision: str | None = "0011_api_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = postgresql.TIMESTAMP(timezone=True)


def upgrade() -> None:
    op.create_table(
        "twin_history",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("bucket", TZ, nullable=False),
        sa.Column("last_seen", TZ, nullable=False),
        sa.Column("taken_at", TZ, nullable=False),
        sa.Column("state", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "bucket", name="pk_twin_history"),
    )
    op.create_index("ix_twin_history_bucket", "twin_history", ["bucket"])


def downgrade() -> None:
    op.drop_index("ix_twin_history_bucket", table_name="twin_history")
    op.drop_table("twin_history")
