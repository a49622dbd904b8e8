"""``/fleet``: counts across the fleet, and where its positioned devices are."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api.auth import VIEWER, Credentials, caller
from api.models import FleetSummary, Me, Positions, answers
from api.stores import Stores
from storage import device_reads

router = APIRouter(tags=["fleet"], dependencies=[VIEWER])


@router.get(
    "/fleet/summary",
    summary="devices by status, kind, profile; open alerts by severity",
    responses=answers(FleetSummary),
)
def summary(request: Request) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    with stores.connection() as conn:
        counts = device_reads.fleet_counts(conn)
    live = stores.counts.get() if stores.counts is not None else {}
    by_status = {"online": live.get("online", 0), "silent": live.get("silent", 0)}
    by_status["offline"] = max(0, counts.devices - sum(by_status.values()))
    return {"by_status": by_status, **dataclasses.asdict(counts)}


@router.get(
    "/me", summary="the calling key: its name and role", tags=["keys"], responses=answers(Me)
)
async def me(request: Request, credentials: Credentials) -> dict[str, Any]:
    key = await caller(request, credentials)
    return {"id": key.id, "name": key.name, "role": key.role}


@router.get(
    "/fleet/positions",
    summary="positioned devices (from the live GEO set)",
    responses=answers(Positions),
)
def positions(
    request: Request, limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000
) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    found = stores.live.positions(limit) if stores.live is not None else []
    return {"items": [{"device_id": d, "lat": lat, "lon": lon} for d, lat, lon in found]}
