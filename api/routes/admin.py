"""Admin routes: API keys, alert rules and notification routes (what ``twin apikey`` and
``twin alerts rule|route`` manage; a running engine picks rule and route edits up by itself)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Body, Path, Request
from pydantic import BaseModel, Field

from api import bodies
from api.auth import ADMIN
from api.models import (
    Key,
    Keys,
    NewKeyMade,
    Removed,
    RouteList,
    RouteOut,
    RuleRemoved,
    Rules,
    RuleSaved,
    RuleToggled,
    answers,
)
from api.params import Plain
from api.stores import Stores
from storage import api_keys, outbox
from storage.alert_store import remove_rule, save_rules, set_rule_enabled, stored_rules
from twin.alerts.rules import parse_rules

router = APIRouter(tags=["admin"], dependencies=[ADMIN])

Profile = Annotated[Plain, Field(max_length=64)]
ItemId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]


@router.get("/apikeys", summary="API keys (never the keys themselves)", responses=answers(Keys))
def list_keys(request: Request, revoked: bool = False) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    with stores.connection() as conn:
        return bodies.keys(api_keys.list_keys(conn, revoked=revoked))


class NewKey(BaseModel):
    name: Plain = Field(min_length=1, max_length=200)
    role: Literal["viewer", "operator", "admin"]


@router.post(
    "/apikeys",
    status_code=201,
    summary="make a key (shown in this answer only)",
    responses=answers(NewKeyMade, 201),
)
def create_key(request: Request, body: NewKey) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    with stores.connection() as conn:
        record, key = api_keys.create(conn, body.name, body.role)
    return {**bodies.key(record), "key": key}


@router.delete("/apikeys/{key_id}", summary="revoke a key", responses=answers(Key))
def revoke_key(request: Request, key_id: Annotated[int, Path(ge=1, le=2**62)]) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    with stores.connection() as conn:
        record = api_keys.revoke(conn, key_id)
    stores.keys.forget(key_id)
    return bodies.key(record)


@router.get("/rules", summary="alert rules as stored", responses=answers(Rules))
def rules(request: Request) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    with stores.connection() as conn:
        return bodies.rules(stored_rules(conn))


@router.put(
    "/rules/{rule_id}",
    summary="add or replace a rule (its JSON definition)",
    responses=answers(RuleSaved),
)
def put_rule(
    request: Request, rule_id: ItemId, body: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    parsed = parse_rules(msgspec.json.encode({**body, "id": rule_id}).decode(), "body")
    with stores.connection() as conn:
        save_rules(conn, parsed)
    return {"id": rule_id, "definition": msgspec.to_builtins(parsed[0])}


@router.post(
    "/rules/{rule_id}/{action}",
    summary="enable or disable a rule",
    responses=answers(RuleToggled),
)
def toggle_rule(
    request: Request, rule_id: ItemId, action: Literal["enable", "disable"]
) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    with stores.connection() as conn:
        set_rule_enabled(conn, rule_id, action == "enable")
    return {"id": rule_id, "enabled": action == "enable"}


@router.delete(
    "/rules/{rule_id}",
    summary="delete a rule (a shipped rule is disabled instead)",
    responses=answers(RuleRemoved),
)
def delete_rule(request: Request, rule_id: ItemId) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    with stores.connection() as conn:
        deleted = remove_rule(conn, rule_id)
    return {"id": rule_id, "deleted": deleted, "disabled": not deleted}


@router.get("/routes", summary="notification routes (secrets masked)", responses=answers(RouteList))
def routes(request: Request) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    with stores.connection() as conn:
        return bodies.routes(outbox.list_routes(conn), outbox.counts(conn))


class RouteIn(BaseModel):
    channel: Literal["log", "webhook", "slack", "email"]
    target: Plain = Field(default="", max_length=2000)
    secret: Plain = Field(default="", max_length=2000)
    min_severity: Literal["info", "warning", "major", "critical"] = "warning"
    profiles: list[Profile] = Field(default_factory=list, max_length=50)
    device_group: Plain = Field(default="", max_length=200)
    max_per_device_hour: int = Field(default=20, ge=0, le=100_000)
    remind_every_s: int = Field(default=0, ge=0, le=10**7)
    enabled: bool = True


@router.put(
    "/routes/{route_id}",
    summary="add or replace a notification route",
    responses=answers(RouteOut),
)
def put_route(request: Request, route_id: ItemId, body: RouteIn) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    route = outbox.Route(id=route_id, **{**body.model_dump(), "profiles": tuple(body.profiles)})
    with stores.connection() as conn:
        outbox.save_route(conn, route)
    return bodies.route(route)


@router.delete(
    "/routes/{route_id}",
    summary="remove a route (its pending notifications cancelled)",
    responses=answers(Removed),
)
def delete_route(request: Request, route_id: ItemId) -> dict[str, Any]:
    stores: Stores = request.app.state.stores
    with stores.connection() as conn:
        outbox.remove_route(conn, route_id)
    return {"id": route_id, "deleted": True}
