"""The content of the daily maintenance reports, from the facts of the day (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

Rows = Mapping[str, Sequence[tuple[Any, ...]]]


@dataclass(frozen=True)
class DayFacts:
    """What the stores hold of one day, per device."""

    day: date
    metrics: Rows
    """metric, readings, mean, min, max (from the hourly tier)."""
    windows: Mapping[str, tuple[int, float | None, float | None]]
    """windows, mean uptime %, mean efficiency rating (the performance windows)."""
    anomalies: Rows
    """detector, severity, count (episodes that started that day)."""
    alerts: Rows
    """rule, peak severity, status, count (alerts first seen that day)."""
    recommendations: Rows
    """part, name, confidence, due, reorder (open, by rank)."""
    kinds: Mapping[str, str] = field(default_factory=dict)


def device_report(facts: DayFacts, device_id: str) -> dict[str, Any]:
    summary = {
        m: {"n": int(n), "mean": round(mean, 3), "min": lo, "max": hi}
        for m, n, mean, lo, hi in facts.metrics[device_id]
    }
    window = facts.windows.get(device_id)
    uptime = round(window[1], 1) if window and window[1] is not None else None
    return {
        "day": facts.day.isoformat(),
        "device_id": device_id,
        "kind": facts.kinds.get(device_id, ""),
        "readings": max((v["n"] for v in summary.values()), default=0),
        "metrics": summary,
        "uptime_pct": uptime,
        "efficiency_rating": round(window[2], 1) if window and window[2] is not None else None,
        "anomalies": [
            {"detector": det, "severity": sev, "count": int(n)}
            for det, sev, n in facts.anomalies.get(device_id, [])
        ],
        "alerts": [
            {"rule": rule, "severity": sev, "status": status, "count": int(n)}
            for rule, sev, status, n in facts.alerts.get(device_id, [])
        ],
        "recommendations": [
            {"part": part, "name": name, "confidence": conf,
             "due": due.isoformat() if due else None, "reorder": reorder}
            for part, name, conf, due, reorder in facts.recommendations.get(device_id, [])[:5]
        ],
    }  # fmt: skip


def fleet_report(facts: DayFacts, devices: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The fleet's report from the day's device reports."""
    recs = facts.recommendations
    by_kind: dict[str, int] = {}
    by_detector: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    attention = []
    for report in devices:
        kind = report["kind"] or "unknown"
        by_kind[kind] = by_kind.get(kind, 0) + 1
        for a in report["anomalies"]:
            by_detector[a["detector"]] = by_detector.get(a["detector"], 0) + a["count"]
        for a in report["alerts"]:
            by_severity[a["severity"]] = by_severity.get(a["severity"], 0) + a["count"]
        found = sum(a["count"] for a in report["anomalies"])
        if report["alerts"] or found:
            attention.append(
                {"device_id": report["device_id"], "alerts": len(report["alerts"]),
                 "anomalies": found}
            )  # fmt: skip
    uptimes = [r["uptime_pct"] for r in devices if r["uptime_pct"] is not None]
    return {
        "day": facts.day.isoformat(),
        "devices_reporting": len(facts.metrics),
        "readings": sum(r["readings"] for r in devices),
        "by_kind": by_kind,
        "uptime_pct": round(sum(uptimes) / len(uptimes), 1) if uptimes else None,
        "anomalies": by_detector,
        "alerts": by_severity,
        "recommendations_open": sum(len(v) for v in recs.values()),
        "reorders": sum(1 for v in recs.values() for r in v if r[4]),
        "attention": sorted(
            attention, key=lambda a: (-a["alerts"], -a["anomalies"], a["device_id"])
        )[:10],
    }
