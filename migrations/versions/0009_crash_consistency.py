"""Crash consistency: snapshots know their transaction, rows can be found by commit time, and
the database forbids a second open alert or a second open anomaly episode.

* ``twin_snapshots.txn_at``: the time of the transaction that wrote the snapshot (``now()``).
  The engine writes a twin's snapshot only with the last of its outputs in a batch, so the
  snapshot covers every row of its device ingested at or before ``txn_at``; after a crash the
  rows ingested later are replayed into the restored twin.
* A BRIN index on ``telemetry.ingested_at`` finds those rows without a scan (rows are inserted
  in commit order, so the index is a few pages per partition).
* Partial unique indexes: one open (not resolved) alert per device and rule, one open (not
  ended) anomaly episode per device, detector and metric. Duplicates left by older engines are
  closed first: every open alert but the newest is resolved by ``migration``, and every open
  episode but the newest is ended where the next one started.

Revision ID: 0009_crash_consistency
Revises: 0008_reports
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_crash_consistency"
down_revision: str | None = "0008_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "twin_snapshots",
        sa.Column(
            "txn_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.create_index(
        "ix_telemetry_ingested_brin", "telemetry", ["ingested_at"], postgresql_using="brin"
    )
    op.execute(
        "UPDATE alerts a SET status = 'resolved', resolved_at = now(), resolved_by = 'migration', "
        "updated_at = now() FROM (SELECT id, row_number() OVER (PARTITION BY device_id, rule_id "
        "ORDER BY first_seen DESC, id DESC) AS n FROM alerts WHERE status <> 'resolved') d "
        "WHERE a.id = d.id AND d.n > 1"
    )
    op.execute(
        "UPDATE anomalies a SET ended_at = d.next_start, updated_at = now() FROM (SELECT "
        "device_id, detector, metric, started_at, lead(started_at) OVER (PARTITION BY device_id, "
        "detector, metric ORDER BY started_at) AS next_start FROM anomalies "
        "WHERE ended_at IS NULL) d WHERE a.device_id = d.device_id AND a.detector = d.detector "
        "AND a.metric = d.metric AND a.started_at = d.started_at AND d.next_start IS NOT NULL"
    )
    op.create_index(
        "uq_alerts_open",
        "alerts",
        ["device_id", "rule_id"],
        unique=True,
        postgresql_where=sa.text("status <> 'resolved'"),
    )
    op.create_index(
        "uq_anomalies_open",
        "anomalies",
        ["device_id", "detector", "metric"],
        unique=True,
        postgresql_where=sa.text("ended_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_anomalies_open", table_name="anomalies")
    op.drop_index("uq_alerts_open", table_name="alerts")
    op.drop_index("ix_telemetry_ingested_brin", table_name="telemetry")
    op.drop_column("twin_snapshots", "txn_at")
