"""The JSON bodies the API answers with, built in one place: the routes return them, and the CLI's
``--json`` prints the very same (``twin alerts list --json`` is ``GET /api/v1/alerts``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from pydantic import TypeAdapter

from storage.alert_store import AlertRow, StoredRule
from storage.api_keys import ApiKey
from storage.outbox import Route
from storage.recommendations import RecommendationRow


def items(rows: Iterable[Any]) -> dict[str, Any]:
    """A list answer: ``{"items": [...]}`` of dataclass rows."""
    return {"items": [r if isinstance(r, dict) else dataclasses.asdict(r) for r in rows]}


def alerts(rows: Sequence[AlertRow]) -> dict[str, Any]:
    return items(rows)


def alert(row: dict[str, Any], timeline: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    return {
        **row,
        "timeline": [
            {"at": at, "transition": t, "status": s, "severity": sev, "by": by, "note": note}
            for at, t, s, sev, by, note in timeline
        ],
    }


def recommendations(rows: Sequence[RecommendationRow]) -> dict[str, Any]:
    return items(rows)


def rules(stored: Sequence[StoredRule]) -> dict[str, Any]:
    return items(stored)


def route(r: Route) -> dict[str, Any]:
    body = dataclasses.asdict(r)
    body["secret"] = "***" if r.secret else ""
    return body


def routes(stored: Sequence[Route], outbox: dict[str, int] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"items": [route(r) for r in stored]}
    if outbox is not None:
        body["outbox"] = outbox
    return body


def key(k: ApiKey) -> dict[str, Any]:
    return dataclasses.asdict(k)


def keys(stored: Sequence[ApiKey]) -> dict[str, Any]:
    return {"items": [key(k) for k in stored]}


def report(day: date, device: str | None, content: dict[str, Any]) -> dict[str, Any]:
    return {"date": day, "device_id": device, "report": content}


_ANY = TypeAdapter(Any)


def dumps(body: Any) -> str:
    """A body as the API sends it (times as RFC 3339 text, as the API's serializer writes them)."""
    return json.dumps(_ANY.dump_python(body, mode="json"), indent=2, sort_keys=True)


def acceptance(per_part: Sequence[tuple[Any, ...]], per_rule: Sequence[tuple[Any, ...]]) -> dict:
    """Feedback per part and per business rule: (name, accepted, rejected, modified, cost)."""

    def rows(table: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
        names = ("name", "accepted", "rejected", "modified", "mean_actual_cost")
        return [dict(zip(names, row, strict=True)) for row in table]

    return {"per_part": rows(per_part), "per_rule": rows(per_rule)}
