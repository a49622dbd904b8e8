"""``/twins/{id}``: a twin's live state from Redis, or its last snapshot once it went quiet;
with ``at``, the twin as it was then (``api.twin_at``)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api.auth import VIEWER
from api.models import Twin, answers
from api.params import DeviceId, moment
from api.problems import Problem
from api.stores import Stores
from api.twin_at import twin_at
from storage import device_reads
from twin.state import decode_state

router = APIRouter(tags=["twins"], dependencies=[VIEWER])


def snapshot_body(device_id: str, taken_at: Any, encoded: str) -> dict[str, Any]:
    """What an offline twin last knew, in the live view's terms."""
    state = decode_state(encoded)
    return {
        "device_id": device_id,
        "status": "offline",
        "source": "snapshot",
        "snapshot_taken_at": taken_at,
        "kind": state.kind,
        "profile": state.profile,
        "last_seen_ms": state.last_seen_ms,
        "messages": state.messages,
        "readings": state.readings,
        "rejected": state.rejected,
        "health": state.health,
        "values": dict(state.latest.as_dict()),
        "km_per_day": state.km_per_day,
        "operating_hours": state.operating_hours,
        "load_ema": state.load_ema,
    }


LIVE_FIELDS = frozenset(
    {
        "device_id", "kind", "profile", "status", "last_seen_ms", "updated_ms", "messages",
        "readings", "rejected", "health", "anomalies_open", "alerts_open", "alert_severity",
        "km_per_day", "usage_category", "operating_hours", "load_ema", "recs_open", "recs_top",
    }
)  # fmt: skip
"""The live hash's own fields; every other field of it is a metric's newest value."""


def live_body(device_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"device_id": device_id, "source": "live"}
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if name in LIVE_FIELDS:
            body[name] = value
        else:
            values[name] = value
    body["values"] = values
    return body


AT = "RFC 3339 time: the twin as it was then (values exact to the reading; health as of the \
nearest stored snapshot before it)"


@router.get(
    "/twins/{device_id}",
    summary="the twin's live state, its last snapshot, or its past",
    responses=answers(Twin),
)
async def get_twin(
    request: Request,
    device_id: DeviceId,
    at: Annotated[str | None, Query(max_length=64, description=AT)] = None,
) -> dict[str, Any]:
    """On the event loop while the twin is live (one Redis round trip, no thread hop); the
    stored snapshot and the past are read on a worker thread."""
    stores: Stores = request.app.state.stores
    when = moment(at, "at")
    if when is not None:
        return await asyncio.to_thread(twin_at, stores, device_id, when)
    if stores.feed is not None:
        fields = (await stores.feed.twins([device_id]))[0]
        if fields is not None:
            return live_body(device_id, fields)
    return await asyncio.to_thread(_stored, stores, device_id)


def _stored(stores: Stores, device_id: str) -> dict[str, Any]:
    with stores.connection() as conn:
        snap = device_reads.snapshot(conn, device_id)
        if snap is None:
            if device_reads.one(conn, device_id) is None:
                raise Problem(404, f"no device {device_id!r}")
            return {"device_id": device_id, "status": "offline", "source": "registry",
                    "values": {}}  # fmt: skip
    return snapshot_body(device_id, *snap)
