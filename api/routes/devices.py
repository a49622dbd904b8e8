"""``/devices``: the registry, filtered and paged, one device, and its telemetry."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.auth import VIEWER
from api.models import Device, DevicePage, Telemetry, answers
from api.params import NO_NUL, DeviceId, Limit, after_cursor, cursor_of, metric_names, moment
from api.problems import Problem
from api.stores import Stores
from storage import device_reads, telemetry_reads
from storage.device_reads import DeviceFilter, DeviceRow

router = APIRouter(tags=["devices"], dependencies=[VIEWER])

STATUSES = ("online", "silent", "offline")
SCAN_MAX = 5_000
"""The most registry rows one page looks through when it filters by live status."""
RAW_SPAN = timedelta(days=2)
HOURLY_SPAN = timedelta(days=400)
AUTO_RAW = timedelta(hours=6)
AUTO_HOURLY = timedelta(days=14)


def device_body(row: DeviceRow, status: str, health: int | None) -> dict[str, Any]:
    return {
        "device_id": row.device_id,
        "kind": row.kind,
        "profile": row.profile,
        "status": status,
        "health": health,
        "group": row.attributes.get("group"),
        "attributes": row.attributes,
        "first_seen": row.first_seen,
        "last_seen": row.last_seen,
        "open_alerts": row.open_alerts,
        "worst_open_severity": row.worst_severity,
    }


def _live(stores: Stores, rows: list[DeviceRow]) -> list[tuple[str, int | None]]:
    if stores.live is None:
        return [("offline", None)] * len(rows)
    return stores.live.healths([r.device_id for r in rows])


@router.get(
    "/devices",
    summary="devices, filtered, in id order, a page at a time",
    responses=answers(DevicePage),
)
def list_devices(
    request: Request,
    kind: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    profile: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    status: Annotated[Literal["online", "silent", "offline"] | None, Query()] = None,
    group: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    search: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    where = DeviceFilter(kind=kind, profile=profile, group=group, search=search)
    after = after_cursor(cursor)
    items: list[dict[str, Any]] = []
    scanned, more = 0, True
    with stores.connection() as conn:
        while more and len(items) < limit and scanned < SCAN_MAX:
            want = limit - len(items) if status is None else 200
            rows = device_reads.page(conn, where, after, want)
            more = len(rows) == want  # a shorter page was the end of the registry
            for row, (live, health) in zip(rows, _live(stores, rows), strict=True):
                if len(items) == limit:
                    more = True
                    break
                after = row.device_id
                if status is None or live == status:
                    items.append(device_body(row, live, health))
            scanned += len(rows)
    return {"items": items, "next_cursor": cursor_of(after) if more and after else None}


@router.get(
    "/devices/{device_id}",
    summary="one device: registry row, live status, open alerts",
    responses=answers(Device),
)
def get_device(request: Request, device_id: DeviceId) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    with stores.connection() as conn:
        row = device_reads.one(conn, device_id)
    if row is None:
        raise Problem(404, f"no device {device_id!r}")
    live, health = _live(stores, [row])[0]
    return device_body(row, live, health)


def _step(step: str, span: timedelta) -> str:
    if step == "auto":
        return "raw" if span <= AUTO_RAW else "1h" if span <= AUTO_HOURLY else "1d"
    if step == "raw" and span > RAW_SPAN:
        raise Problem(400, "range too large for raw rows (at most 2 days): use step=1h or 1d")
    if step == "1h" and span > HOURLY_SPAN:
        raise Problem(400, "range too large for hourly rows (at most 400 days): use step=1d")
    return step


@router.get(
    "/devices/{device_id}/telemetry",
    summary="readings over a time range: raw, hourly or daily by range and step",
    responses={200: {"model": Telemetry, "content": {"text/csv": {}}}},
)
def telemetry(
    request: Request,
    device_id: DeviceId,
    from_: Annotated[str | None, Query(alias="from", description="RFC 3339; to - 1 h")] = None,
    to: Annotated[str | None, Query(description="RFC 3339, excluded; now")] = None,
    metrics: Annotated[str | None, Query(max_length=2000, description="comma-separated")] = None,
    step: Annotated[Literal["auto", "raw", "1h", "1d"], Query()] = "auto",
    format: Annotated[Literal["json", "csv"], Query()] = "json",
    limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> Any:
    stores: Stores = request.app.state.stores
    end = moment(to, "to") or datetime.now(UTC)
    start = moment(from_, "from") or end - timedelta(hours=1)
    if start >= end:
        raise Problem(400, "from must be before to")
    chosen = _step(step, end - start)
    names = metric_names(metrics)
    most = min(limit or stores.config.max_points, stores.config.max_points)
    with stores.connection() as conn:
        if device_reads.one(conn, device_id) is None:
            raise Problem(404, f"no device {device_id!r}")
        series = telemetry_reads.read(conn, device_id, start, end, chosen, names, most)
    if format == "csv":
        return Response(_csv(series), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{device_id}-telemetry.csv"'
        })  # fmt: skip
    return {
        "device_id": device_id,
        "from": start,
        "to": end,
        "step": series.step,
        "points": series.points,
        "next_from": series.next_from,
    }


def _csv(series: telemetry_reads.Series) -> str:
    out = io.StringIO()
    write = csv.writer(out).writerow
    if series.step == "raw":
        names = sorted({k for p in series.points for k in p["values"]})
        write(["ts", "seq", *names])
        for p in series.points:
            write([p["ts"].isoformat(), p["seq"], *(p["values"].get(n, "") for n in names)])
    else:
        write(["bucket", "metric", "n", "mean", "min", "max"])
        for p in series.points:
            for name, mean in p["values"].items():
                write([p["ts"].isoformat(), name, p["n"][name], mean, p["min"][name],
                       p["max"][name]])  # fmt: skip
    return out.getvalue()
