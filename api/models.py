"""What each route answers, as schemas for the OpenAPI document.

The routes build plain JSON bodies (``api.bodies``, shared with the CLI's ``--json``); these
models describe them for clients and code generators, and the fuzz test checks every answer
against them. They are documentation, not a second serialisation on the hot path.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from storage.alert_store import AlertRow, StoredRule
from storage.device_reads import AnomalyRow
from storage.recommendations import RecommendationRow


class Problem(BaseModel):
    """RFC 9457."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None


class Device(BaseModel):
    device_id: str
    kind: str
    profile: str
    status: Literal["online", "silent", "offline"]
    health: int | None
    group: Any = None
    attributes: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    open_alerts: int
    worst_open_severity: str | None


class DevicePage(BaseModel):
    items: list[Device]
    next_cursor: str | None = Field(description="pass as cursor for the next page")


class Point(BaseModel):
    """Raw: ``ts, seq, values``; hourly and daily: ``ts, values`` (means), ``min, max, n``."""

    ts: datetime
    seq: int | None = None
    values: dict[str, Any]
    min: dict[str, Any] | None = None
    max: dict[str, Any] | None = None
    n: dict[str, int] | None = None


class Telemetry(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    device_id: str
    from_: datetime = Field(alias="from")
    to: datetime
    step: Literal["raw", "1h", "1d"]
    points: list[Point]
    next_from: datetime | None = Field(description="where to continue, when there was more")


class Twin(BaseModel):
    """Live (``source: live``: the fields of the live hash), last snapshot (``snapshot``), the
    registry only (``registry``), or the twin at a past time (``history``, with ``resolution``)."""

    model_config = ConfigDict(extra="allow")

    device_id: str
    source: Literal["live", "snapshot", "registry", "history"]
    status: str | None = None
    kind: str | None = None
    profile: str | None = None
    last_seen_ms: int | None = None
    readings: int | None = None
    health: int | None = None
    values: dict[str, Any]


class TimelineStep(BaseModel):
    at: datetime
    transition: str
    status: str
    severity: str
    by: str | None
    note: str | None


class AlertDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    device_id: str
    rule_id: str
    status: str
    severity: str
    timeline: list[TimelineStep]


class Alerts(BaseModel):
    items: list[AlertRow]


class Anomalies(BaseModel):
    items: list[AnomalyRow]


class Recommendations(BaseModel):
    items: list[RecommendationRow]


class Recommendation(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int
    device_id: str
    part: str
    status: str


class Done(BaseModel):
    """An action's outcome: the item and its new status."""

    id: str | int
    status: str


class Report(BaseModel):
    date: date
    device_id: str | None
    report: dict[str, Any]


class FleetSummary(BaseModel):
    by_status: dict[str, int]
    devices: int
    by_kind: dict[str, int]
    by_profile: dict[str, int]
    open_alerts_by_severity: dict[str, int]
    devices_with_open_alerts: int
    open_anomalies: int
    open_recommendations: int


class Position(BaseModel):
    device_id: str
    lat: float
    lon: float


class Positions(BaseModel):
    items: list[Position]


class Me(BaseModel):
    id: int
    name: str
    role: str


class Keys(BaseModel):
    items: list[Key]


class Key(BaseModel):
    id: int
    name: str
    role: str
    prefix: str = Field(description="the key's first characters, to tell keys apart")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewKeyMade(Key):
    key: str = Field(description="shown in this answer only")


class Rules(BaseModel):
    items: list[StoredRule]


class RuleSaved(BaseModel):
    id: str
    definition: dict[str, Any]


class RuleToggled(BaseModel):
    id: str
    enabled: bool


class RuleRemoved(BaseModel):
    id: str
    deleted: bool
    disabled: bool


class RouteOut(BaseModel):
    id: str
    channel: str
    target: str
    secret: str = Field(description="*** when one is set")
    min_severity: str
    profiles: list[str]
    device_group: str
    max_per_device_hour: int
    remind_every_s: int
    enabled: bool


class RouteList(BaseModel):
    items: list[RouteOut]
    outbox: dict[str, int] = Field(default_factory=dict)


class Removed(BaseModel):
    id: str
    deleted: bool


def answers(model: type[BaseModel], status: int = 200) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route answering ``model``."""
    return {status: {"model": model}}


ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "description": "a problem document (RFC 9457)",
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    },
    "5XX": {
        "description": "a store did not answer (503 with Retry-After)",
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    },
}
"""Every route's errors; instead of FastAPI's validation error shape, which this API does not
send (a request outside the schema is a 422 problem document)."""
