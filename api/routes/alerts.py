"""``/alerts`` and ``/anomalies``: the inbox, one alert with its timeline, and what operators do
with alerts (the same rules as ``twin alerts``: the acting key is named in the timeline)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, Field

from api import bodies
from api.auth import OPERATOR, VIEWER, acting
from api.models import AlertDetail, Alerts, Anomalies, Done, answers
from api.params import NO_NUL, AlertId, DeviceQuery, Limit, Plain, moment
from api.stores import Stores
from storage import device_reads
from storage.alert_store import act, list_alerts, show_alert
from storage.api_keys import ApiKey

router = APIRouter(tags=["alerts"])

Severity = Literal["info", "warning", "major", "critical"]


@router.get(
    "/alerts",
    summary="alerts, newest first",
    dependencies=[VIEWER],
    responses=answers(Alerts),
)
def alerts(
    request: Request,
    status: Annotated[Literal["open", "new", "acknowledged", "resolved"] | None, Query()] = None,
    device: DeviceQuery = None,
    severity: Annotated[Severity | None, Query(description="this severity or worse")] = None,
    rule: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    since: Annotated[str | None, Query(description="RFC 3339: last seen at or after")] = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    after = moment(since, "since")
    with stores.connection() as conn:
        rows = list_alerts(
            conn, status=status, device=device, severity=severity, since=after, rule=rule,
            limit=limit,
        )  # fmt: skip
    return bodies.alerts(rows)


@router.get(
    "/alerts/{alert_id}",
    summary="one alert and its timeline",
    dependencies=[VIEWER],
    responses=answers(AlertDetail),
)
def alert(request: Request, alert_id: AlertId) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    with stores.connection() as conn:
        return bodies.alert(*show_alert(conn, alert_id))


class Note(BaseModel):
    note: Plain = Field(default="", max_length=2000)


class Assignment(Note):
    to: Plain = Field(min_length=1, max_length=200, description="who takes the alert")


def _act(
    request: Request, alert_id: str, action: str, key: ApiKey, note: str, to: str | None
) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    with stores.connection() as conn:
        status = act(conn, alert_id, action, acting(key), note, to)
    return {"id": alert_id, "status": status}


@router.post("/alerts/{alert_id}/ack", summary="acknowledge a new alert", responses=answers(Done))
def ack(
    request: Request, alert_id: AlertId, body: Annotated[Note | None, Body()] = None,
    key: ApiKey = OPERATOR,
) -> dict[str, Any]:  # fmt: skip
    return _act(request, alert_id, "ack", key, body.note if body else "", None)


@router.post(
    "/alerts/{alert_id}/assign",
    summary="assign an open alert to someone",
    responses=answers(Done),
)
def assign(
    request: Request, alert_id: AlertId, body: Assignment, key: ApiKey = OPERATOR
) -> dict[str, Any]:
    return _act(request, alert_id, "assign", key, body.note, body.to)


@router.post("/alerts/{alert_id}/resolve", summary="resolve an open alert", responses=answers(Done))
def resolve(
    request: Request, alert_id: AlertId, body: Annotated[Note | None, Body()] = None,
    key: ApiKey = OPERATOR,
) -> dict[str, Any]:  # fmt: skip
    return _act(request, alert_id, "resolve", key, body.note if body else "", None)


@router.get(
    "/anomalies",
    summary="anomaly episodes, newest first",
    dependencies=[VIEWER],
    responses=answers(Anomalies),
)
def anomalies(
    request: Request,
    device: DeviceQuery = None,
    open: Annotated[bool, Query(description="only episodes still open")] = False,
    since: Annotated[str | None, Query(description="RFC 3339")] = None,
    until: Annotated[str | None, Query(description="RFC 3339")] = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    start, end = moment(since, "since"), moment(until, "until")
    with stores.connection() as conn:
        rows = device_reads.anomalies(
            conn, device=device, open_only=open, since=start, until=end, limit=limit
        )
    return bodies.items(rows)
