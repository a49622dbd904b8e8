"""MQTT sessions the engine has used, so that none is left holding readings unseen; and the
relay that acknowledges, in a cluster, messages committed by another process than their reader.

A broker keeps a persistent session's messages for its client id until the session expires.
When the client id changes (``TWIN_MQTT_CLIENT_ID``, a smaller cluster), the old session would
keep what was queued for it; the engine finds such sessions here at start and drains them.

``ack_relay`` holds, per reading process, the tickets of messages another process committed
(written in the committing transaction); the reader takes them and acknowledges.

Revision ID: 0010_mqtt_sessions
Revises: 0009_crash_consistency
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010_mqtt_sessions"
down_revision: str | None = "0009_crash_consistency"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mqtt_sessions",
        sa.Column("broker", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("expiry_s", sa.Integer(), nullable=False),
        sa.Column("last_used", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("drained_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("broker", "client_id", name="pk_mqtt_sessions"),
    )
    op.create_table(
        "ack_relay",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("process", sa.Integer(), nullable=False),
        sa.Column("tickets", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ack_relay"),
    )
    op.create_index("ix_ack_relay_process", "ack_relay", ["process"])


def downgrade() -> None:
    op.drop_table("ack_relay")
    op.drop_table("mqtt_sessions")
