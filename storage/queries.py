"""Read queries over the stores: what the engine has written (demo summary, load reports)."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from storage import partitions
from storage.database import connect


@dataclass
class StoreSummary:
    devices_by_kind: dict[str, int] = field(default_factory=dict)
    telemetry_rows: int = 0
    partitions: int = 0
    dead_letters_by_reason: dict[str, int] = field(default_factory=dict)
    snapshots: int = 0
    events: int = 0
    live_twins: int = 0
    positioned: int = 0
    latest_rows: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def devices(self) -> int:
        return sum(self.devices_by_kind.values())

    @property
    def dead_letters(self) -> int:
        return sum(self.dead_letters_by_reason.values())


def summarize(database_url: str, redis_url: str | None, redis_prefix: str = "") -> StoreSummary:
    s = StoreSummary()
    with connect(database_url) as conn:
        s.devices_by_kind = dict(
            conn.execute(
                "SELECT kind, count(*) FROM devices GROUP BY kind ORDER BY kind"
            ).fetchall()
        )
        s.telemetry_rows = conn.execute("SELECT count(*) FROM telemetry").fetchone()[0]  # type: ignore[index]
        s.partitions = len(partitions.existing_days(conn))
        s.dead_letters_by_reason = dict(
            conn.execute(
                "SELECT reason, count(*) FROM dead_letters GROUP BY reason ORDER BY reason"
            ).fetchall()
        )
        s.snapshots = conn.execute("SELECT count(*) FROM twin_snapshots").fetchone()[0]  # type: ignore[index]
        s.events = conn.execute("SELECT count(*) FROM device_events").fetchone()[0]  # type: ignore[index]
        s.latest_rows = [
            (d, ts.isoformat(timespec="milliseconds"), str(v))
            for d, ts, v in conn.execute(
                'SELECT device_id, ts, "values"::text FROM telemetry ORDER BY ts DESC LIMIT 3'
            ).fetchall()
        ]
    if redis_url:
        client = redis.Redis.from_url(redis_url)
        try:
            geo_key = f"{redis_prefix}twin:geo"
            s.live_twins = sum(
                1
                for key in client.scan_iter(match=f"{redis_prefix}twin:*", count=1000)
                if key.decode() != geo_key
            )
            s.positioned = int(client.zcard(geo_key))
        finally:
            client.close()
    return s
