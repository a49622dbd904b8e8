"""``/recommendations`` and ``/reports``: what the maintenance side has found, and the feedback
people give it (which the next rankings learn from)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BaseModel, Field

from api import bodies
from api.auth import OPERATOR, VIEWER, acting
from api.models import Done, Recommendation, Recommendations, Report, answers
from api.params import DeviceQuery, Limit, Plain
from api.problems import Problem
from api.stores import Stores
from storage import recommendations as recs
from storage import reports
from storage.api_keys import ApiKey

router = APIRouter(tags=["maintenance"])

RecId = Annotated[int, Path(ge=1, le=2**62)]
RecStatus = Literal["open", "accepted", "rejected", "modified", "cleared", "all"]
FEEDBACK = {"accept": "accepted", "reject": "rejected", "modify": "modified"}


@router.get(
    "/recommendations",
    summary="part recommendations",
    dependencies=[VIEWER],
    responses=answers(Recommendations),
)
def recommendations(
    request: Request,
    device: DeviceQuery = None,
    status: Annotated[RecStatus, Query()] = "open",
    limit: Limit = 100,
) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    with stores.connection() as conn:
        rows = recs.list_recommendations(
            conn, device=device, status=None if status == "all" else status, limit=limit
        )
    return bodies.recommendations(rows)


@router.get(
    "/recommendations/{rec_id}",
    summary="one recommendation with its reasoning",
    dependencies=[VIEWER],
    responses=answers(Recommendation),
)
def recommendation(request: Request, rec_id: RecId) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    with stores.connection() as conn:
        return recs.show(conn, rec_id)


class Feedback(BaseModel):
    reason: Plain = Field(default="", max_length=2000)
    actual_cost: float | None = Field(default=None, ge=0, le=1e9)
    alternative_part: str | None = Field(default=None, max_length=64, description="fitted instead")


@router.post(
    "/recommendations/{rec_id}/{action}",
    summary="accept, reject or modify",
    responses=answers(Done),
)
def feedback(
    request: Request,
    rec_id: RecId,
    action: Literal["accept", "reject", "modify"],
    body: Annotated[Feedback | None, Body()] = None,
    key: ApiKey = OPERATOR,
) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    given = body or Feedback()
    if action == "modify" and not given.alternative_part:
        raise Problem(400, "modify needs alternative_part: the part fitted instead")
    with stores.connection() as conn:
        recs.give_feedback(
            conn, rec_id, FEEDBACK[action], acting(key), reason=given.reason,
            alternative_part=given.alternative_part, actual_cost=given.actual_cost,
        )  # fmt: skip
    return {"id": rec_id, "status": FEEDBACK[action]}


@router.get(
    "/reports/daily",
    summary="the daily maintenance report",
    dependencies=[VIEWER],
    responses=answers(Report),
)
def daily_report(
    request: Request,
    date_: Annotated[date | None, Query(alias="date", description="YYYY-MM-DD; today")] = None,
    device: DeviceQuery = None,
) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    day = date_ or datetime.now(UTC).date()
    with stores.connection() as conn:
        try:
            content = reports.load(conn, day, device)
        except LookupError:
            raise Problem(
                404,
                f"no daily report for {device or 'the fleet'} on {day} (the engine writes one "
                "after each day; `twin report daily` writes one now)",
            ) from None
    return bodies.report(day, device, content)
