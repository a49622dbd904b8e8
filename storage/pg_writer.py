"""Writes a batch of twin outputs to PostgreSQL in one transaction.

Telemetry goes through COPY into a session-temporary staging table and then one
``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` into the partitioned table, so a redelivered
or replayed reading is never a second row. Everything else a batch carries (registry upserts,
events, snapshots, dead letters) is pipelined in the same transaction: one commit per batch.

Connection problems surface as :class:`~twin.errors.StoreUnavailable` (retry later); a batch
the server refuses for its content surfaces as :class:`~twin.errors.StoreRejected`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import msgspec
import psycopg
from psycopg import errors as pg_errors

from storage import partitions
from storage.database import connect
from storage.outbox import ROUTE_MATCH
from storage.reference import INSERT_SERVICE, service_row
from storage.rollups import MARK_LATE, late_cutoff_ms
from twin import defaults
from twin.clock import MS_PER_DAY, MS_PER_HOUR, ms_to_datetime
from twin.errors import StoreRejected, StoreUnavailable
from twin.maintenance.service import service_from_event
from twin.records import DeadLetter, TwinOutput

log = logging.getLogger(__name__)

_STAGE = (
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
_TOUCH_DEVICE = "UPDATE devices SET last_seen = GREATEST(last_seen, %s) WHERE device_id = %s"
_UPSERT_ANOMALY = (
    "INSERT INTO anomalies (device_id, detector, metric, started_at, ended_at, kind, severity, "
    "score, expected, observed, model_version) "
    "SELECT %(device_id)s::text, %(detector)s::text, %(metric)s::text, "
    "%(started_at)s::timestamptz, %(ended_at)s::timestamptz, %(kind)s::text, "
    "%(severity)s::text, %(score)s::float8, %(expected)s::float8, %(observed)s::float8, "
    "%(model_version)s::text "
    "WHERE %(ended_at)s::timestamptz IS NOT NULL OR NOT EXISTS (SELECT 1 FROM anomalies o "
    "WHERE o.device_id = %(device_id)s::text AND o.detector = %(detector)s::text "
    "AND o.metric = %(metric)s::text AND o.ended_at IS NULL "
    "AND o.started_at <> %(started_at)s::timestamptz) "
    "ON CONFLICT (device_id, detector, metric, started_at) DO UPDATE SET "
    "ended_at = COALESCE(EXCLUDED.ended_at, anomalies.ended_at), "
    "severity = CASE WHEN anomalies.severity = 'critical' THEN 'critical' "
    "ELSE EXCLUDED.severity END, "
    "score = GREATEST(anomalies.score, EXCLUDED.score), "
    "expected = COALESCE(EXCLUDED.expected, anomalies.expected), "
    "observed = COALESCE(EXCLUDED.observed, anomalies.observed), "
    "updated_at = now()"
)
"""An episode is written when it opens and again when it escalates or closes: one row each,
and a replayed reading that reopens it changes nothing. A second open episode for the same
device, detector and metric is never written (the database forbids it: ``uq_anomalies_open``)."""

_UPSERT_ALERT = (
    "INSERT INTO alerts AS a (id, device_id, rule_id, rule_type, status, severity, "
    "peak_severity, occurrences, first_seen, last_seen, observed, detail, resolved_at, "
    "resolved_by) SELECT %(id)s::text, %(device_id)s::text, %(rule_id)s::text, "
    "%(rule_type)s::text, %(status)s::text, %(severity)s::text, %(peak)s::text, "
    "%(occurrences)s::int, %(first_seen)s::timestamptz, %(last_seen)s::timestamptz, "
    "%(observed)s::float8, %(detail)s::text, %(resolved_at)s::timestamptz, "
    "%(resolved_by)s::text WHERE NOT EXISTS (SELECT 1 FROM alerts o "
    "WHERE o.device_id = %(device_id)s::text AND o.rule_id = %(rule_id)s::text "
    "AND o.status <> 'resolved' AND o.id <> %(id)s::text) "
    "ON CONFLICT (id) DO UPDATE SET "
    "severity = EXCLUDED.severity, peak_severity = EXCLUDED.peak_severity, "
    "occurrences = GREATEST(a.occurrences, EXCLUDED.occurrences), "
    "last_seen = GREATEST(a.last_seen, EXCLUDED.last_seen), "
    "observed = EXCLUDED.observed, detail = EXCLUDED.detail, "
    "status = CASE WHEN EXCLUDED.status = 'resolved' THEN 'resolved' ELSE a.status END, "
    "resolved_at = EXCLUDED.resolved_at, resolved_by = EXCLUDED.resolved_by, "
    "updated_at = now() "
    "WHERE a.status <> 'resolved' AND EXCLUDED.last_seen >= a.last_seen"
)
"""The engine's picture of an alert. A resolved alert is final (a person or the clear time
closed it); an older picture never overwrites a newer one, so replays change nothing; and no
second alert opens while one is open for the same device and rule (``uq_alerts_open``)."""

_INSERT_TIMELINE = (
    "INSERT INTO alert_timeline (alert_id, at, transition, status, severity, by, note) "
    "SELECT %s::text, %s::timestamptz, %s::text, %s::text, %s::text, 'engine', %s::text "
    "WHERE EXISTS (SELECT 1 FROM alerts WHERE id = %s::text) "
    "ON CONFLICT DO NOTHING"
)

_ENQUEUE = (
    "INSERT INTO notification_outbox (alert_id, device_id, route_id, transition, at, payload) "
    "SELECT %(alert_id)s, %(device_id)s, r.id, %(transition)s, %(at)s, %(payload)s::jsonb || "
    "jsonb_build_object('profile', d.profile, 'rule_name', "
    "coalesce((SELECT definition->>'name' FROM alert_rules WHERE id = %(rule_id)s), '')) "
    "FROM notification_routes r LEFT JOIN devices d ON d.device_id = %(device_id)s "
    f"WHERE r.enabled AND {ROUTE_MATCH.format(severity='%(severity)s')} "
    "AND EXISTS (SELECT 1 FROM alerts x WHERE x.id = %(alert_id)s) "
    "AND NOT EXISTS (SELECT 1 FROM alerts x WHERE x.id = %(alert_id)s "
    "AND x.status = 'resolved' AND x.resolved_by IS DISTINCT FROM 'engine') "
    "ON CONFLICT DO NOTHING"
)
"""Notifications go to the outbox in the same transaction as the alert they announce: none is
lost and none is sent for an alert that was not stored, nor for one a person already closed.
A dispatcher (``flows.jobs.notifier``) delivers them."""
NOTIFIED = ("opened", "escalated", "resolved")

_QUEUE_RECHECK = (
    "INSERT INTO recommendation_queue (device_id, reason) "
    "SELECT DISTINCT unnest(%s::text[]), 'twin' ON CONFLICT (device_id) DO NOTHING"
)
"""Twins that crossed a usage boundary: the recommender looks at them again (once however often
they are queued before it does)."""

_RELAY = "INSERT INTO ack_relay (process, tickets) VALUES (%s, %s)"
"""Tickets of messages another process of a cluster read: relayed back to it in the same
transaction that commits what they produced (``flows.connectors.ack_relay``)."""

_COPY_DEAD = "COPY dead_letters (received_at, topic, device_id, reason, detail, payload) FROM STDIN"

_json = msgspec.json.Encoder().encode


@dataclass
class WriteResult:
    """What one batch wrote (``duplicates`` = readings already stored before)."""

    readings: int = 0
    inserted: int = 0
    dead_letters: int = 0
    events: int = 0
    devices: int = 0
    snapshots: int = 0
    anomalies: int = 0
    alerts: int = 0
    partitions_created: list[date] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return self.readings - self.inserted


class PgWriter:
    """One connection, opened on first use and reopened after a failure."""

    def __init__(
        self, url: str, *, partitions_ahead_days: int = defaults.PARTITIONS_AHEAD_DAYS
    ) -> None:
        self._url = url
        self._ahead = partitions_ahead_days
        self._conn: psycopg.Connection | None = None
        self._days: set[int] = set()  # days since epoch known to have a partition

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            try:
                conn = connect(self._url)
                conn.execute(_STAGE)
                conn.commit()
            except psycopg.OperationalError as exc:
                raise StoreUnavailable(f"PostgreSQL unreachable: {exc}") from exc
            self._conn = conn
            self._days.clear()
        return self._conn

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    def write(
        self,
        outputs: Sequence[TwinOutput],
        dead_letters: Sequence[DeadLetter] = (),
        relay: Mapping[int, list[int]] | None = None,
    ) -> WriteResult:
        """One transaction; ``relay``: tickets of other processes' messages, by process."""
        conn = self._connection()
        try:
            result = self._write(conn, outputs, dead_letters)
            if relay:
                with conn.cursor() as cur:
                    cur.executemany(_RELAY, list(relay.items()))
            conn.commit()
            return result
        except pg_errors.CheckViolation as exc:
            # a partition vanished under us (retention elsewhere): forget what we knew, retry once
            self._rollback()
            if "no partition" not in str(exc):
                raise StoreRejected(str(exc)) from exc
            self._days.clear()
            return self.write(outputs, dead_letters, relay)
        except psycopg.OperationalError as exc:
            self.close()
            raise StoreUnavailable(f"PostgreSQL write failed: {exc}") from exc
        except psycopg.Error as exc:
            self._rollback()
            raise StoreRejected(f"PostgreSQL refused the batch: {exc}") from exc

    def _rollback(self) -> None:
        try:
            if self._conn is not None:
                self._conn.rollback()
        except psycopg.Error:
            self.close()

    def _write(
        self,
        conn: psycopg.Connection,
        outputs: Sequence[TwinOutput],
        extra_dead: Sequence[DeadLetter],
    ) -> WriteResult:
        result = WriteResult()
        lines: list[bytes] = []
        days: set[int] = set()
        device_rows = []
        event_rows = []
        service_rows: list[tuple[object, ...]] = []
        snapshot_rows = []
        touch_rows = []
        anomaly_rows = []
        alert_rows = []
        timeline_rows = []
        notify_rows: list[dict[str, object]] = []
        dead = list(extra_dead)
        late_before = late_cutoff_ms(time.time_ns() // 1_000_000)
        late: set[tuple[str, int]] = set()
        last = {out.device_id: out for out in outputs}
        """A twin's snapshot is written only with its last output of the batch, so that it
        covers every row of its device up to this transaction (see ``txn_at``)."""
        for out in outputs:
            for t in out.alerts:
                resolved = t.transition == "resolved"
                at = ms_to_datetime(t.at_ms)
                status = "resolved" if resolved else "new"
                alert_rows.append(
                    {
                        "id": t.alert_id,
                        "device_id": t.device_id,
                        "rule_id": t.rule_id,
                        "rule_type": t.rule_type,
                        "status": status,
                        "severity": t.severity or t.peak_severity,
                        "peak": t.peak_severity or t.severity,
                        "occurrences": t.occurrences,
                        "first_seen": ms_to_datetime(t.first_seen_ms),
                        "last_seen": ms_to_datetime(t.last_seen_ms),
                        "observed": t.observed,
                        "detail": t.detail,
                        "resolved_at": at if resolved else None,
                        "resolved_by": "engine" if resolved else None,
                    }
                )
                timeline_rows.append(
                    (t.alert_id, at, t.transition, status, t.severity or t.peak_severity, t.detail,
                     t.alert_id)
                )  # fmt: skip
                if t.transition in NOTIFIED:
                    notify_rows.append(
                        {
                            "alert_id": t.alert_id,
                            "device_id": t.device_id,
                            "transition": t.transition,
                            "at": at,
                            "severity": t.severity or t.peak_severity,
                            "rule_id": t.rule_id,
                            "payload": _json(
                                {
                                    "alert_id": t.alert_id,
                                    "device_id": t.device_id,
                                    "rule_id": t.rule_id,
                                    "rule_type": t.rule_type,
                                    "transition": t.transition,
                                    "severity": t.severity or t.peak_severity,
                                    "peak_severity": t.peak_severity,
                                    "occurrences": t.occurrences,
                                    "first_seen_ms": t.first_seen_ms,
                                    "at_ms": t.at_ms,
                                    "observed": t.observed,
                                    "detail": t.detail,
                                }
                            ).decode(),
                        }
                    )
            for a in out.anomalies:
                anomaly_rows.append(
                    {
                        "device_id": a.device_id,
                        "detector": a.detector,
                        "metric": a.metric,
                        "started_at": ms_to_datetime(a.started_ms),
                        "ended_at": None if a.ended_ms is None else ms_to_datetime(a.ended_ms),
                        "kind": a.kind,
                        "severity": a.severity,
                        "score": a.score,
                        "expected": a.expected,
                        "observed": a.observed,
                        "model_version": a.model_version,
                    }
                )
            if out.readings:
                dev = out.device_id.encode()
                for r in out.readings:
                    if r.ts_ms < late_before:  # its hour is rolled up already: roll it again
                        late.add((out.device_id, r.ts_ms // MS_PER_HOUR * MS_PER_HOUR))
                    values = _json(r.values)
                    if b"\\" in values:
                        values = values.replace(b"\\", b"\\\\")
                    seq = -1 if r.seq is None else r.seq
                    lines.append(
                        b"%s\t%d\t%d\t%s\t%d\n" % (dev, r.ts_ms, seq, values, r.received_ms)
                    )
                    days.add(r.ts_ms // MS_PER_DAY)
            if out.dead_letters:
                dead.extend(out.dead_letters)
            for e in out.events:
                event_rows.append(
                    (
                        e.device_id,
                        ms_to_datetime(e.ts_ms),
                        e.type,
                        _json(e.body).decode(),
                        ms_to_datetime(e.received_ms),
                    )
                )
                if e.type == "service":
                    record = service_from_event(e.device_id, ms_to_datetime(e.ts_ms), e.body)
                    service_rows.append(service_row(record))
            reg = out.registry
            if reg is not None:
                device_rows.append(
                    (
                        reg.device_id,
                        reg.kind,
                        reg.profile,
                        _json(reg.attributes).decode(),
                        ms_to_datetime(reg.first_seen_ms),
                        ms_to_datetime(reg.last_seen_ms),
                    )
                )
            snap = out.snapshot
            if snap is not None and last[out.device_id] is out:
                last_seen = ms_to_datetime(snap.last_seen_ms or snap.taken_ms)
                snapshot_rows.append(
                    (
                        snap.device_id,
                        ms_to_datetime(snap.taken_ms),
                        last_seen,
                        1,
                        snap.state.decode(),
                    )
                )
                touch_rows.append((last_seen, snap.device_id))

        with conn.cursor() as cur:
            if device_rows:
                cur.executemany(_UPSERT_DEVICE, device_rows)
                result.devices = len(device_rows)
            if lines:
                missing = days - self._days
                if missing:
                    result.partitions_created = partitions.ensure(
                        conn, (date(1970, 1, 1) + timedelta(days=d) for d in missing)
                    )
                with cur.copy(_COPY_STAGE) as copy:
                    copy.write(b"".join(lines))
                cur.execute(_MERGE)
                result.readings = len(lines)
                result.inserted = max(cur.rowcount, 0)
            if alert_rows:
                cur.executemany(_UPSERT_ALERT, alert_rows)
                cur.executemany(_INSERT_TIMELINE, timeline_rows)
                if notify_rows:
                    cur.executemany(_ENQUEUE, notify_rows)
                result.alerts = len(alert_rows)
            if anomaly_rows:
                cur.executemany(_UPSERT_ANOMALY, anomaly_rows)
                result.anomalies = len(anomaly_rows)
            if event_rows:
                cur.executemany(_INSERT_EVENT, event_rows)
                result.events = len(event_rows)
            if service_rows:
                cur.executemany(INSERT_SERVICE, service_rows)
            if late:
                cur.execute(
                    MARK_LATE,
                    ([d for d, _ in late], [ms_to_datetime(h) for _, h in late]),
                )
            recheck = [o.device_id for o in outputs if o.recheck]
            if recheck:
                cur.execute(_QUEUE_RECHECK, (recheck,))
            if snapshot_rows:
                cur.executemany(_UPSERT_SNAPSHOT, snapshot_rows)
                cur.executemany(_TOUCH_DEVICE, touch_rows)
                result.snapshots = len(snapshot_rows)
            if dead:
                with cur.copy(_COPY_DEAD) as copy:
                    for d in dead:
                        copy.write_row(
                            (
                                ms_to_datetime(d.received_ms),
                                _text(d.topic),
                                d.device_id,
                                d.reason.value,
                                _text(d.detail),
                                d.payload,
                            )
                        )
                result.dead_letters = len(dead)
        self._days |= days
        return result


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL; dead letters keep the raw bytes in ``payload`` anyway."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value
