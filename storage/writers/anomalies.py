"""Anomaly episodes: one row per episode, written when it opens, escalates and closes."""

from __future__ import annotations

import psycopg

from storage.writers.batch import WriteResult, json
from twin.clock import ms_to_datetime
from twin.records import TwinOutput

_UPSERT_ANOMALY = (
    "INSERT INTO anomalies (device_id, detector, metric, started_at, ended_at, kind, severity, "
    "score, expected, observed, model_version, explanation) "
    "SELECT %(device_id)s::text, %(detector)s::text, %(metric)s::text, "
    "%(started_at)s::timestamptz, %(ended_at)s::timestamptz, %(kind)s::text, "
    "%(severity)s::text, %(score)s::float8, %(expected)s::float8, %(observed)s::float8, "
    "%(model_version)s::text, %(explanation)s::jsonb "
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
    "explanation = COALESCE(EXCLUDED.explanation, anomalies.explanation), "
    "updated_at = now()"
)
"""An episode is written when it opens and again when it escalates or closes: one row each,
and a replayed reading that reopens it changes nothing. A second open episode for the same
device, detector and metric is never written (the database forbids it: ``uq_anomalies_open``)."""


class AnomalyRows:
    def __init__(self) -> None:
        self.rows: list[dict[str, object]] = []

    def add(self, out: TwinOutput, last: bool) -> None:
        for a in out.anomalies:
            self.rows.append(
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
                    "explanation": json(a.explanation).decode() if a.explanation else None,
                }
            )

    def write(self, cur: psycopg.Cursor, result: WriteResult) -> None:
        if self.rows:
            cur.executemany(_UPSERT_ANOMALY, self.rows)
            result.anomalies = len(self.rows)
