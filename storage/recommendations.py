"""Maintenance recommendations in PostgreSQL: what the recommender reads and writes.

One open recommendation per device and part (a partial unique index). Saving a device's new
ranking leaves an unchanged recommendation alone, updates a changed one, opens new ones and
clears those no longer due (a service replaced the part, say). People close recommendations
with feedback (accepted, rejected, modified), which the next rankings learn from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psycopg
from psycopg.types.json import Jsonb

from storage.reference import replacements
from twin.clock import MS_PER_DAY
from twin.errors import AlertActionError, UnknownItem
from twin.maintenance.recommend import DeviceFacts, Recommendation
from twin.profiles import DeviceProfile, ProfileBook
from twin.state import decode_state

FEEDBACK = ("accepted", "rejected", "modified")
EVIDENCE_DAYS = 7
"""Anomalies that ended this recently still count as evidence."""


def enqueue(conn: psycopg.Connection, device_ids: Sequence[str], reason: str) -> int:
    cur = conn.execute(
        "INSERT INTO recommendation_queue (device_id, reason) SELECT unnest(%s::text[]), %s "
        "ON CONFLICT (device_id) DO NOTHING",
        (list(device_ids), reason),
    )
    conn.commit()
    return max(cur.rowcount, 0)


def claim(conn: psycopg.Connection, limit: int = 100) -> list[str]:
    """Take devices off the queue (several recommenders may share it)."""
    rows = conn.execute(
        "DELETE FROM recommendation_queue WHERE device_id IN (SELECT device_id FROM "
        "recommendation_queue ORDER BY queued_at LIMIT %s FOR UPDATE SKIP LOCKED) "
        "RETURNING device_id",
        (limit,),
    ).fetchall()
    conn.commit()
    return sorted(r[0] for r in rows)


def facts_for(
    conn: psycopg.Connection, device_ids: Sequence[str], profiles: ProfileBook, now: datetime
) -> dict[str, DeviceFacts]:
    """What the recommender knows of each device: registry attributes, the twin's latest
    snapshot (usage), service history and recent anomalies."""
    rows = conn.execute(
        "SELECT d.device_id, d.kind, d.profile, d.attributes, d.first_seen, s.state::text "
        "FROM devices d LEFT JOIN twin_snapshots s USING (device_id) "
        "WHERE d.device_id = ANY(%s)",
        (list(device_ids),),
    ).fetchall()
    history = replacements(conn, device_ids)
    evidence, decided = _evidence(conn, device_ids, now), _decided(conn, device_ids)
    out: dict[str, DeviceFacts] = {}
    for device_id, kind, profile_name, attributes, first_seen, state_text in rows:
        attrs: dict[str, Any] = attributes or {}
        out[device_id] = DeviceFacts(
            device_id=device_id,
            kind=kind,
            profile=profile_name,
            model=str(attrs.get("model", "")),
            dealer=str(attrs.get("dealer_code", "")),
            region=str(attrs.get("region_code", "")),
            terrain=str(attrs.get("terrain_type", "")),
            season=str(attrs.get("season_code", "")),
            in_service_since=_in_service(attrs, first_seen),
            replacements=history.get(device_id, {}),
            anomalies=tuple(sorted(set(evidence.get(device_id, [])))),
            decided=decided.get(device_id, {}),
            **_usage(state_text, profiles.get(profile_name)),
        )
    return out


def _usage(state_text: str | None, profile: DeviceProfile) -> dict[str, Any]:
    """Distance, operating hours and their pace from the twin's snapshot."""
    if state_text is None:
        return {}
    state = decode_state(state_text.encode())
    usage: dict[str, Any] = {
        "odometer_km": state.odometer_km,
        "km_per_day": state.km_per_day,
        "usage_category": state.usage_category(profile) or "",
    }
    if state.operating_hours > 0:
        days = max(1.0, (state.last_seen_ms - state.first_seen_ms) / MS_PER_DAY)
        usage["operating_hours"] = state.operating_hours
        usage["hours_per_day"] = state.operating_hours / days
    return usage


def _evidence(
    conn: psycopg.Connection, device_ids: Sequence[str], now: datetime
) -> dict[str, list[tuple[str, str, str]]]:
    """Open or recent anomalies as (detector, metric, kind), per device."""
    evidence: dict[str, list[tuple[str, str, str]]] = {}
    for device_id, detector, metric, kind in conn.execute(
        "SELECT device_id, detector, metric, kind FROM anomalies WHERE device_id = ANY(%s) "
        "AND (ended_at IS NULL OR ended_at > %s)",
        (list(device_ids), now - timedelta(days=EVIDENCE_DAYS)),
    ).fetchall():
        evidence.setdefault(device_id, []).append((detector, metric, kind))
    return evidence


def _decided(conn: psycopg.Connection, device_ids: Sequence[str]) -> dict[str, dict[str, datetime]]:
    """When a person last decided on each part's recommendation, per device."""
    decided: dict[str, dict[str, datetime]] = {}
    for device_id, part, at in conn.execute(
        "SELECT device_id, part, max(at) FROM recommendation_feedback WHERE device_id = ANY(%s) "
        "GROUP BY 1, 2",
        (list(device_ids),),
    ).fetchall():
        decided.setdefault(device_id, {})[part] = at
    return decided


def _in_service(attributes: dict[str, Any], first_seen: datetime) -> datetime:
    """The invoice or commissioning date from the attributes, else when the engine first saw it."""
    for key in ("invoice_date", "in_service_since", "commissioned"):
        text = attributes.get(key)
        if isinstance(text, str):
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return first_seen


@dataclass
class SaveResult:
    opened: int = 0
    updated: int = 0
    unchanged: int = 0
    cleared: int = 0


def _signature(rank: int, confidence: float, due: Any, stock: str) -> tuple[Any, ...]:
    return (rank, round(confidence, 1), due, stock)


def save(conn: psycopg.Connection, device_id: str, recs: Sequence[Recommendation]) -> SaveResult:
    """The device's new ranking against its open recommendations (in the caller's
    transaction)."""
    result = SaveResult()
    current = {
        part: (rec_id, _signature(rank, conf, due, stock))
        for rec_id, part, rank, conf, due, stock in conn.execute(
            "SELECT id, part, rank, final_confidence, due, stock FROM part_recommendations "
            "WHERE device_id = %s AND status = 'open' FOR UPDATE",
            (device_id,),
        ).fetchall()
    }
    for r in recs:
        values = (
            r.name, r.category, r.rank, r.base_confidence, r.final_confidence, r.wear, r.due,
            r.due_in_days, r.cost, r.critical, r.stock, r.reorder,
            Jsonb(msgspec.to_builtins(r.reasoning)), r.model_version,
        )  # fmt: skip
        found = current.pop(r.part, None)
        if found is None:
            conn.execute(
                "INSERT INTO part_recommendations (name, category, rank, base_confidence, "
                "final_confidence, wear, due, due_in_days, cost, critical, stock, reorder, "
                "reasoning, model_version, device_id, part) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (*values, device_id, r.part),
            )
            result.opened += 1
        elif found[1] == _signature(r.rank, r.final_confidence, r.due, r.stock):
            result.unchanged += 1
        else:
            conn.execute(
                "UPDATE part_recommendations SET name = %s, category = %s, rank = %s, "
                "base_confidence = %s, final_confidence = %s, wear = %s, due = %s, "
                "due_in_days = %s, cost = %s, critical = %s, stock = %s, reorder = %s, "
                "reasoning = %s, model_version = %s, updated_at = now() WHERE id = %s",
                (*values, found[0]),
            )
            result.updated += 1
    if current:
        conn.execute(
            "UPDATE part_recommendations SET status = 'cleared', closed_at = now(), "
            "updated_at = now() WHERE id = ANY(%s)",
            ([rec_id for rec_id, _ in current.values()],),
        )
        result.cleared = len(current)
    return result


def feedback_counts(conn: psycopg.Connection) -> dict[str, tuple[int, int]]:
    """Per part: recommendations accepted, and rejected or replaced by another part."""
    rows = conn.execute(
        "SELECT part, count(*) FILTER (WHERE feedback = 'accepted'), "
        "count(*) FILTER (WHERE feedback <> 'accepted') FROM recommendation_feedback "
        "GROUP BY part"
    ).fetchall()
    return {part: (int(a), int(r)) for part, a, r in rows}


@dataclass(frozen=True)
class RecommendationRow:
    id: int
    device_id: str
    part: str
    name: str
    rank: int
    final_confidence: float
    due: Any
    cost: float
    stock: str
    reorder: bool
    status: str
    updated_at: datetime


_COLUMNS = (
    "id, device_id, part, name, rank, final_confidence, due, cost, stock, reorder, status, "
    "updated_at"
)


def list_recommendations(
    conn: psycopg.Connection,
    *,
    device: str | None = None,
    status: str | None = "open",
    limit: int = 100,
) -> list[RecommendationRow]:
    where, args = [], []
    if device:
        where.append("device_id = %s")
        args.append(device)
    if status:
        where.append("status = %s")
        args.append(status)
    sql = f"SELECT {_COLUMNS} FROM part_recommendations"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY device_id, rank, id LIMIT %s"
    return [RecommendationRow(*r) for r in conn.execute(sql, (*args, limit)).fetchall()]


def show(conn: psycopg.Connection, rec_id: int) -> dict[str, Any]:
    cur = conn.execute("SELECT * FROM part_recommendations WHERE id = %s", (rec_id,))
    row = cur.fetchone()
    if row is None:
        raise UnknownItem(f"no recommendation {rec_id}")
    return dict(zip([d.name for d in cur.description or ()], row, strict=True))


def give_feedback(
    conn: psycopg.Connection,
    rec_id: int,
    feedback: str,
    by: str,
    *,
    reason: str = "",
    alternative_part: str | None = None,
    actual_cost: float | None = None,
) -> None:
    """Close an open recommendation with feedback."""
    row = conn.execute(
        "SELECT device_id, part, status FROM part_recommendations WHERE id = %s FOR UPDATE",
        (rec_id,),
    ).fetchone()
    if row is None:
        raise UnknownItem(f"no recommendation {rec_id}")
    device_id, part, status = row
    if status != "open":
        raise AlertActionError(f"recommendation {rec_id} is {status}: feedback was given")
    conn.execute(
        "UPDATE part_recommendations SET status = %s, closed_at = now(), updated_at = now() "
        "WHERE id = %s",
        (feedback, rec_id),
    )
    conn.execute(
        "INSERT INTO recommendation_feedback (recommendation_id, device_id, part, feedback, by, "
        "reason, alternative_part, actual_cost) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (rec_id, device_id, part, feedback, by, reason, alternative_part, actual_cost),
    )
    conn.commit()


def acceptance(conn: psycopg.Connection) -> tuple[list[tuple], list[tuple]]:
    """Acceptance per part and per business rule that shaped the recommendation:
    (name, accepted, rejected, modified, mean actual cost)."""
    per_part = conn.execute(
        "SELECT part, count(*) FILTER (WHERE feedback = 'accepted'), "
        "count(*) FILTER (WHERE feedback = 'rejected'), "
        "count(*) FILTER (WHERE feedback = 'modified'), avg(actual_cost) "
        "FROM recommendation_feedback GROUP BY part ORDER BY count(*) DESC, part"
    ).fetchall()
    per_rule = conn.execute(
        "SELECT split_part(step->>'why', ':', 1) AS rule, "
        "count(*) FILTER (WHERE f.feedback = 'accepted'), "
        "count(*) FILTER (WHERE f.feedback = 'rejected'), "
        "count(*) FILTER (WHERE f.feedback = 'modified'), avg(f.actual_cost) "
        "FROM recommendation_feedback f JOIN part_recommendations r "
        "ON r.id = f.recommendation_id, jsonb_array_elements(r.reasoning) AS step "
        "WHERE step->>'factor' = 'rule' GROUP BY 1 ORDER BY count(*) DESC, 1"
    ).fetchall()
    return per_part, per_rule
