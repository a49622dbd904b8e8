"""Maintenance: parts catalog, dealers and their stock, seasonal and terrain factors, business
rules, maintenance schedules, and service history.

Revision ID: 0005_maintenance
Revises: 0004_notifications
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_maintenance"
down_revision: str | None = "0004_notifications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "business_rules",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("rule_condition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("rule_action", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("effective_from", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("effective_until", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("priority >= 0", name="ck_business_rules_priority"),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "dealers",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("region", sa.Text(), nullable=False),
        sa.Column("city", sa.Text(), server_default="", nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "updated_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_index("ix_dealers_region", "dealers", ["region"], unique=False)
    op.create_table(
        "maintenance_schedules",
        sa.Column("applies_to", sa.Text(), nullable=False),
        sa.Column("part", sa.Text(), nullable=False),
        sa.Column("interval_km", sa.Float(), nullable=True),
        sa.Column("interval_months", sa.Float(), nullable=True),
        sa.Column("interval_hours", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("applies_to", "part", name="pk_maintenance_schedules"),
    )
    op.create_table(
        "parts",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("oem_number", sa.Text(), server_default="", nullable=False),
        sa.Column("cost", sa.Float(), server_default="0", nullable=False),
        sa.Column("interval_km", sa.Float(), nullable=True),
        sa.Column("interval_months", sa.Float(), nullable=True),
        sa.Column("interval_hours", sa.Float(), nullable=True),
        sa.Column("critical", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("seasonal", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "terrain_specific", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("kinds", postgresql.ARRAY(sa.Text()), server_default="{vehicle}", nullable=False),
        sa.Column("profiles", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column(
            "evidence",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("builtin", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "updated_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("cost >= 0", name="ck_parts_cost"),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_index("ix_parts_category", "parts", ["category"], unique=False)
    op.create_table(
        "parts_inventory",
        sa.Column("part", sa.Text(), nullable=False),
        sa.Column("dealer", sa.Text(), nullable=False),
        sa.Column("on_hand", sa.Integer(), nullable=False),
        sa.Column("minimum", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reorder_point", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "updated_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "on_hand >= 0 AND minimum >= 0 AND reorder_point >= 0", name="ck_inventory_levels"
        ),
        sa.PrimaryKeyConstraint("part", "dealer", name="pk_parts_inventory"),
    )
    op.create_index("ix_parts_inventory_dealer", "parts_inventory", ["dealer"], unique=False)
    op.create_table(
        "seasonal_config",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("season", sa.Text(), nullable=False),
        sa.Column("factor", sa.Float(), nullable=False),
        sa.Column("parts", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("categories", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("regions", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.CheckConstraint("factor > 0", name="ck_seasonal_config_factor"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "service_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("at", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("service_type", sa.Text(), server_default="REGULAR", nullable=False),
        sa.Column("odometer_km", sa.Float(), nullable=True),
        sa.Column("operating_hours", sa.Float(), nullable=True),
        sa.Column(
            "parts_replaced", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("dealer", sa.Text(), nullable=True),
        sa.Column("notes", sa.Text(), server_default="", nullable=False),
        sa.Column("source", sa.Text(), server_default="event", nullable=False),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id", "at", "service_type", name="uq_service_once"),
    )
    op.create_index(
        "ix_service_history_device", "service_history", ["device_id", "at"], unique=False
    )
    op.create_table(
        "terrain_config",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("terrain", sa.Text(), nullable=False),
        sa.Column("factor", sa.Float(), nullable=False),
        sa.Column("parts", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("categories", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("regions", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.CheckConstraint("factor > 0", name="ck_terrain_config_factor"),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("terrain_config")
    op.drop_index("ix_service_history_device", table_name="service_history")
    op.drop_table("service_history")
    op.drop_table("seasonal_config")
    op.drop_index("ix_parts_inventory_dealer", table_name="parts_inventory")
    op.drop_table("parts_inventory")
    op.drop_index("ix_parts_category", table_name="parts")
    op.drop_table("parts")
    op.drop_table("maintenance_schedules")
    op.drop_index("ix_dealers_region", table_name="dealers")
    op.drop_table("dealers")
    op.drop_table("business_rules")
