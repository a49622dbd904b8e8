"""Marks for the jobs beside the dataflow: hours to roll up again for late readings, and twins
the recommender should look at again."""

from __future__ import annotations

import psycopg

from storage.rollups import MARK_LATE
from storage.writers.batch import WriteResult
from twin.clock import ms_to_datetime
from twin.records import TwinOutput
from twin.rollup_schedule import late_cutoff_ms, late_hour

_QUEUE_RECHECK = (
    "INSERT INTO recommendation_queue (device_id, reason) "
    "SELECT DISTINCT unnest(%s::text[]), 'twin' ON CONFLICT (device_id) DO NOTHING"
)
"""Twins that crossed a usage boundary: the recommender looks at them again (once however often
they are queued before it does)."""


class RollupMarks:
    """``now_ms``: the time the batch is written, which decides what is late."""

    def __init__(self, now_ms: int) -> None:
        self._cutoff = late_cutoff_ms(now_ms)
        self.hours: set[tuple[str, int]] = set()

    def add(self, out: TwinOutput, last: bool) -> None:
        for r in out.readings:
            hour = late_hour(r.ts_ms, self._cutoff)
            if hour is not None:
                self.hours.add((out.device_id, hour))

    def write(self, cur: psycopg.Cursor, result: WriteResult) -> None:
        if self.hours:
            devices = [d for d, _ in self.hours]
            cur.execute(MARK_LATE, (devices, [ms_to_datetime(h) for _, h in self.hours]))


class RecheckQueue:
    def __init__(self) -> None:
        self.devices: list[str] = []

    def add(self, out: TwinOutput, last: bool) -> None:
        if out.recheck:
            self.devices.append(out.device_id)

    def write(self, cur: psycopg.Cursor, result: WriteResult) -> None:
        if self.devices:
            cur.execute(_QUEUE_RECHECK, (self.devices,))
