"""Telemetry rows: COPY into a session-temporary stage, then one ``INSERT ... SELECT ... ON
CONFLICT DO NOTHING`` into the partitioned table, so a redelivered or replayed reading is never
a second row. Partitions a batch needs are created first, once per day and connection."""

from __future__ import annotations

from datetime import date, timedelta

import psycopg

from storage import partitions
from storage.writers.batch import WriteResult, json
from twin.clock import MS_PER_DAY
from twin.records import TwinOutput

STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS telemetry_stage (device_id text, ts_ms bigint, seq bigint, "
    "vals jsonb, received_ms bigint) ON COMMIT DELETE ROWS"
)
_COPY_STAGE = "COPY telemetry_stage (device_id, ts_ms, seq, vals, received_ms) FROM STDIN"
_MERGE = (
    'INSERT INTO telemetry (device_id, ts, seq, "values", received_at) '
    "SELECT device_id, timestamptz 'epoch' + ts_ms * interval '1 millisecond', seq, vals, "
    "timestamptz 'epoch' + received_ms * interval '1 millisecond' FROM telemetry_stage "
    "ON CONFLICT (device_id, ts, seq) DO NOTHING"
)


class TelemetryRows:
    def __init__(self, known_days: set[int]) -> None:
        self.lines: list[bytes] = []
        """COPY text lines: device, ts_ms, seq (-1 = none), values JSON, received_ms."""
        self.days: set[int] = set()
        self._known = known_days
        """Days since the epoch known to have a partition on this connection (shared)."""

    def add(self, out: TwinOutput, last: bool) -> None:
        if not out.readings:
            return
        dev = out.device_id.encode()
        for r in out.readings:
            values = json(r.values)
            if b"\\" in values:
                values = values.replace(b"\\", b"\\\\")
            seq = -1 if r.seq is None else r.seq
            self.lines.append(b"%s\t%d\t%d\t%s\t%d\n" % (dev, r.ts_ms, seq, values, r.received_ms))
            self.days.add(r.ts_ms // MS_PER_DAY)

    def write(self, cur: psycopg.Cursor, result: WriteResult) -> None:
        if not self.lines:
            return
        missing = self.days - self._known
        if missing:
            result.partitions_created = partitions.ensure(
                cur.connection, (date(1970, 1, 1) + timedelta(days=d) for d in missing)
            )
        with cur.copy(_COPY_STAGE) as copy:
            copy.write(b"".join(self.lines))
        cur.execute(_MERGE)
        result.readings = len(self.lines)
        result.inserted = max(cur.rowcount, 0)

    def committed(self) -> None:
        self._known |= self.days
