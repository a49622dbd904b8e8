"""Maintenance recommendations: the ranked parts per device, feedback on them, and the queue of
devices to look at again.

Revision ID: 0006_recommendations
Revises: 0005_maintenance
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_recommendations"
down_revision: str | None = "0005_maintenance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "part_recommendations",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("part", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("base_confidence", sa.Float(), nullable=False),
        sa.Column("final_confidence", sa.Float(), nullable=False),
        sa.Column("wear", sa.Float(), nullable=False),
        sa.Column("due", sa.Date(), nullable=True),
        sa.Column("due_in_days", sa.Float(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.Column("stock", sa.Text(), nullable=False),
        sa.Column("reorder", sa.Boolean(), nullable=False),
        sa.Column("reasoning", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="open", nullable=False),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("closed_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'accepted', 'rejected', 'modified', 'cleared')",
            name="ck_part_recommendations_status",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_part_recommendations_part", "part_recommendations", ["part", "status"], unique=False
    )
    op.create_index(
        "ix_part_recommendations_status",
        "part_recommendations",
        ["status", "final_confidence"],
        unique=False,
    )
    op.create_index(
        "uq_part_recommendations_open",
        "part_recommendations",
        ["device_id", "part"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "recommendation_queue",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "queued_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("device_id"),
    )
    op.create_table(
        "recommendation_feedback",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("recommendation_id", sa.BigInteger(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("part", sa.Text(), nullable=False),
        sa.Column("feedback", sa.Text(), nullable=False),
        sa.Column("by", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("alternative_part", sa.Text(), nullable=True),
        sa.Column("actual_cost", sa.Float(), nullable=True),
        sa.Column(
            "at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "feedback IN ('accepted', 'rejected', 'modified')", name="ck_recommendation_feedback"
        ),
        sa.ForeignKeyConstraint(
            ["recommendation_id"], ["part_recommendations.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_recommendation_feedback_part",
        "recommendation_feedback",
        ["part", "feedback"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_recommendation_feedback_part", table_name="recommendation_feedback")
    op.drop_table("recommendation_feedback")
    op.drop_table("recommendation_queue")
    op.drop_index(
        "uq_part_recommendations_open",
        table_name="part_recommendations",
        postgresql_where=sa.text("status = 'open'"),
    )
    op.drop_index("ix_part_recommendations_status", table_name="part_recommendations")
    op.drop_index("ix_part_recommendations_part", table_name="part_recommendations")
    op.drop_table("part_recommendations")
