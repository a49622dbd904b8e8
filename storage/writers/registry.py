"""The device registry, device events (with the service records they carry) and snapshots."""

from __future__ import annotations

import psycopg

from storage.reference import INSERT_SERVICE, service_row
from storage.writers.batch import WriteResult, json
from twin.clock import ms_to_datetime
from twin.maintenance.service import service_from_event
from twin.records import TwinOutput

_UPSERT_DEVICE = (
    "INSERT INTO devices (device_id, kind, profile, attributes, first_seen, last_seen) "
    "VALUES (%s, %s, %s, %s::jsonb, %s, %s) ON CONFLICT (device_id) DO UPDATE SET "
    "kind = CASE WHEN excluded.kind = 'generic' THEN devices.kind ELSE excluded.kind END, "
    "profile = CASE WHEN excluded.profile = 'generic' THEN devices.profile "
    "ELSE excluded.profile END, "
    "attributes = devices.attributes || excluded.attributes, "
    "first_seen = LEAST(devices.first_seen, excluded.first_seen), "
    "last_seen = GREATEST(devices.last_seen, excluded.last_seen), updated_at = now()"
)
_INSERT_EVENT = (
    "INSERT INTO device_events (device_id, ts, type, body, received_at) "
    "VALUES (%s, %s, %s, %s::jsonb, %s) ON CONFLICT DO NOTHING"
)
_UPSERT_SNAPSHOT = (
    "INSERT INTO twin_snapshots (device_id, taken_at, last_seen, state_version, state, txn_at) "
    "VALUES (%s, %s, %s, %s, %s::jsonb, now()) ON CONFLICT (device_id) DO UPDATE SET "
    "taken_at = excluded.taken_at, last_seen = excluded.last_seen, "
    "state_version = excluded.state_version, state = excluded.state, txn_at = now() "
    "WHERE excluded.taken_at >= twin_snapshots.taken_at"
)
"""``txn_at`` is this transaction's time: the snapshot covers every row of its device ingested
at or before it, because it is written only with its twin's last output of the batch."""
_KEEP_HISTORY = (
    "INSERT INTO twin_history (device_id, bucket, last_seen, taken_at, state) "
    "SELECT device_id, to_timestamp(floor(extract(epoch FROM last_seen) / %(every)s) * %(every)s), "
    "last_seen, taken_at, state - 'detectors' - 'recent' FROM twin_snapshots "
    "WHERE device_id = ANY(%(ids)s) AND txn_at = now() ON CONFLICT DO NOTHING"
)
"""The first snapshot of each history bucket (by its newest reading) is kept; ``txn_at = now()``
picks the snapshots this transaction wrote (an older one arriving late is not)."""
_TOUCH_DEVICE = "UPDATE devices SET last_seen = GREATEST(last_seen, %s) WHERE device_id = %s"


class RegistryRows:
    def __init__(self) -> None:
        self.rows: list[tuple[object, ...]] = []

    def add(self, out: TwinOutput, last: bool) -> None:
        reg = out.registry
        if reg is not None:
            self.rows.append(
                (
                    reg.device_id,
                    reg.kind,
                    reg.profile,
                    json(reg.attributes).decode(),
                    ms_to_datetime(reg.first_seen_ms),
                    ms_to_datetime(reg.last_seen_ms),
                )
            )

    def write(self, cur: psycopg.Cursor, result: WriteResult) -> None:
        if self.rows:
            cur.executemany(_UPSERT_DEVICE, self.rows)
            result.devices = len(self.rows)


class EventRows:
    """Device events; a ``service`` event is also a service record (the workshop's history)."""

    def __init__(self) -> None:
        self.rows: list[tuple[object, ...]] = []
        self.services: list[tuple[object, ...]] = []

    def add(self, out: TwinOutput, last: bool) -> None:
        for e in out.events:
            at = ms_to_datetime(e.ts_ms)
            self.rows.append(
                (e.device_id, at, e.type, json(e.body).decode(), ms_to_datetime(e.received_ms))
            )
            if e.type == "service":
                self.services.append(service_row(service_from_event(e.device_id, at, e.body)))

    def write(self, cur: psycopg.Cursor, result: WriteResult) -> None:
        if self.rows:
            cur.executemany(_INSERT_EVENT, self.rows)
            result.events = len(self.rows)
        if self.services:
            cur.executemany(INSERT_SERVICE, self.services)


class SnapshotRows:
    """A twin's snapshot, written only with its last output of the batch, so that it covers
    every row of its device up to this transaction (see ``txn_at``); and, one per
    ``history_interval_s`` (0: none), kept as the twin's history."""

    def __init__(self, history_interval_s: float = 0.0) -> None:
        self.history_interval_s = history_interval_s
        self.rows: list[tuple[object, ...]] = []
        self.touches: list[tuple[object, ...]] = []

    def add(self, out: TwinOutput, last: bool) -> None:
        snap = out.snapshot
        if snap is None or not last:
            return
        last_seen = ms_to_datetime(snap.last_seen_ms or snap.taken_ms)
        taken = ms_to_datetime(snap.taken_ms)
        self.rows.append((snap.device_id, taken, last_seen, 1, snap.state.decode()))
        self.touches.append((last_seen, snap.device_id))

    def write(self, cur: psycopg.Cursor, result: WriteResult) -> None:
        if self.rows:
            cur.executemany(_UPSERT_SNAPSHOT, self.rows)
            cur.executemany(_TOUCH_DEVICE, self.touches)
            if self.history_interval_s > 0:
                ids = [row[0] for row in self.rows]
                cur.execute(_KEEP_HISTORY, {"every": self.history_interval_s, "ids": ids})
            result.snapshots = len(self.rows)
