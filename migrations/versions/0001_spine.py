"""Engine spine: registry, profiles, partitioned telemetry, events, snapshots, dead letters.

Revision ID: 0001_spine
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

revision: str = "0001_spine"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = TIMESTAMP(timezone=True)
NOW = sa.text("now()")
EMPTY = sa.text("'{}'::jsonb")


def upgrade() -> None:
    op.create_table(
        "device_profiles",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("definition", JSONB, nullable=False),
        sa.Column("builtin", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
    )
    op.create_table(
        "devices",
        sa.Column("device_id", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False, server_default="generic"),
        sa.Column("profile", sa.Text, nullable=False, server_default="generic"),
        sa.Column("attributes", JSONB, nullable=False, server_default=EMPTY),
        sa.Column("first_seen", TZ, nullable=False),
        sa.Column("last_seen", TZ, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=NOW),
        sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
    )
    op.create_index("ix_devices_kind_profile", "devices", ["kind", "profile"])
    op.create_table(
        "telemetry",
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("ts", TZ, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False, server_default=sa.text("-1")),
        sa.Column("values", JSONB, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("ingested_at", TZ, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("device_id", "ts", "seq", name="pk_telemetry"),
        postgresql_partition_by="RANGE (ts)",
    )
    op.create_table(
        "device_events",
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("ts", TZ, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("body", JSONB, nullable=False, server_default=EMPTY),
        sa.Column("received_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("device_id", "ts", "type", name="pk_device_events"),
    )
    op.create_index("ix_device_events_type_ts", "device_events", ["type", "ts"])
    op.create_table(
        "twin_snapshots",
        sa.Column("device_id", sa.Text, primary_key=True),
        sa.Column("taken_at", TZ, nullable=False),
        sa.Column("last_seen", TZ, nullable=False),
        sa.Column("state_version", sa.Integer, nullable=False),
        sa.Column("state", JSONB, nullable=False),
    )
    op.create_index("ix_twin_snapshots_taken_at", "twin_snapshots", ["taken_at"])
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("device_id", sa.Text),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("stored_at", TZ, nullable=False, server_default=NOW),
    )
    op.create_index("ix_dead_letters_received_at", "dead_letters", ["received_at"])
    op.create_index("ix_dead_letters_reason_received_at", "dead_letters", ["reason", "received_at"])
    op.create_index("ix_dead_letters_device_id", "dead_letters", ["device_id", "received_at"])


def downgrade() -> None:
    for table in (
        "dead_letters",
        "twin_snapshots",
        "device_events",
        "telemetry",
        "devices",
        "device_profiles",
    ):
        op.drop_table(table)
