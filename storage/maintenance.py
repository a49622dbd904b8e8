"""Maintenance: telemetry partitions ahead, raw retention, old notification records and twin
history.

Finished notifications, their delivery attempts and the twins' history are kept as long as raw
telemetry; the hourly tier and the 15-minute windows a year, the daily tier forever (both
configurable)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from storage import outbox, partitions, rollups, twin_history
from storage.database import connect
from twin import defaults


@dataclass(frozen=True)
class MaintenanceReport:
    created: list[date]
    dropped: list[date]
    notifications_pruned: int = 0
    rollups_pruned: int = 0
    history_pruned: int = 0


def maintain(
    database_url: str,
    *,
    ahead_days: int,
    retention_days: int,
    hourly_retention_days: int = defaults.HOURLY_RETENTION_DAYS,
    daily_retention_days: int = defaults.DAILY_RETENTION_DAYS,
    today: date | None = None,
) -> MaintenanceReport:
    today = today or datetime.now(UTC).date()
    with connect(database_url) as conn:
        created = partitions.ensure_window(conn, today, ahead_days)
        dropped = partitions.drop_expired(conn, today, retention_days)
        pruned = outbox.prune(conn, retention_days)
        tiers = rollups.prune(conn, hourly_retention_days, daily_retention_days)
        midnight = datetime(today.year, today.month, today.day, tzinfo=UTC)
        history = twin_history.prune(conn, retention_days, midnight)
        conn.commit()
    return MaintenanceReport(created, dropped, pruned, tiers, history)
