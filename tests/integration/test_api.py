"""The HTTP API over real PostgreSQL and Redis: every route, every role, the error paths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
import redis

from flows.jobs import rollups
from storage import reports
from storage.database import psycopg_url
from tests.integration.api_fleet import MINUTES, T0, Fleet, auth, problem

START = datetime.fromtimestamp(T0 / 1000, UTC)


def test_health_needs_no_key_and_every_route_needs_one(client: httpx.Client, fleet: Fleet):
    assert client.get("/healthz").json() == {"status": "ok"}
    spec = client.get("/api/v1/openapi.json").json()
    gets = [p for p, ops in spec["paths"].items() if "get" in ops and p != "/healthz"]
    assert len(gets) >= 12
    for path in gets:
        concrete = path.replace("{device_id}", fleet.hot).replace("{alert_id}", "x")
        concrete = concrete.replace("{rec_id}", "1").replace("{key_id}", "1")
        body = problem(client.get(concrete), 401)
        assert "API key" in body["detail"]
    problem(client.get("/api/v1/devices", headers={"Authorization": "Bearer tws_nope"}), 401)


def test_roles_read_act_and_manage(client: httpx.Client, fleet: Fleet):
    viewer, operator, admin = (auth(fleet, r) for r in ("viewer", "operator", "admin"))
    assert client.get("/api/v1/alerts", headers=viewer).status_code == 200
    alert_id = client.get(f"/api/v1/alerts?device={fleet.hot}", headers=viewer).json()["items"][0][
        "id"
    ]
    assert (
        "operator"
        in problem(client.post(f"/api/v1/alerts/{alert_id}/ack", headers=viewer), 403)["detail"]
    )
    problem(client.get("/api/v1/apikeys", headers=operator), 403)
    problem(client.get("/api/v1/rules", headers=viewer), 403)
    assert client.get("/api/v1/apikeys", headers=admin).status_code == 200


def test_devices_filter_search_and_pages(client: httpx.Client, fleet: Fleet):
    viewer = auth(fleet, "viewer")

    def ids(query: str) -> list[str]:
        got = client.get(f"/api/v1/devices?search={fleet.run}&{query}", headers=viewer)
        assert got.status_code == 200, got.text
        return [d["device_id"] for d in got.json()["items"]]

    assert ids("") == sorted(fleet.devices)
    assert ids("kind=vehicle") == sorted([fleet.hot, fleet.cool])
    assert ids("profile=pump") == [fleet.pump]
    assert ids("group=north") == [fleet.cool]
    assert ids("status=online") == sorted(fleet.devices)
    assert ids("status=offline") == []
    walked, cursor = [], None
    while True:
        page = client.get(
            f"/api/v1/devices?search={fleet.run}&limit=1" + (f"&cursor={cursor}" if cursor else ""),
            headers=viewer,
        ).json()
        walked += [d["device_id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == sorted(fleet.devices)
    problem(client.get("/api/v1/devices?cursor=!!!", headers=viewer), 400)
    problem(client.get("/api/v1/devices?limit=0", headers=viewer), 422)
    problem(client.get("/api/v1/devices?status=sleeping", headers=viewer), 422)


def test_one_device_and_its_twin(
    client: httpx.Client, fleet: Fleet, redis_url: str, fleet_prefix: str
):
    viewer = auth(fleet, "viewer")
    device = client.get(f"/api/v1/devices/{fleet.hot}", headers=viewer).json()
    assert device["profile"] == "passenger_car" and device["status"] == "online"
    assert device["open_alerts"] >= 1 and device["worst_open_severity"] in ("major", "critical")
    twin = client.get(f"/api/v1/twins/{fleet.hot}", headers=viewer).json()
    assert twin["source"] == "live" and twin["status"] == "online"
    assert twin["values"]["coolant_temp_c"] == pytest.approx(120.0)
    assert twin["readings"] == MINUTES * 60 // 5 and twin["alerts_open"] >= 1
    problem(client.get("/api/v1/twins/no-such-device", headers=viewer), 404)
    problem(client.get("/api/v1/twins/bad%20id", headers=viewer), 422)
    redis.Redis.from_url(redis_url).delete(f"{fleet_prefix}twin:{fleet.pump}")
    offline = client.get(f"/api/v1/twins/{fleet.pump}", headers=viewer).json()
    assert offline["status"] == "offline" and offline["source"] == "snapshot"
    assert offline["values"]["temperature_c"] == 55.0 and offline["readings"] == MINUTES * 12
    assert client.get(f"/api/v1/devices/{fleet.pump}", headers=viewer).json()["status"] == "offline"


def test_telemetry_by_range_step_and_format(client: httpx.Client, fleet: Fleet):
    viewer = auth(fleet, "viewer")
    base = f"/api/v1/devices/{fleet.cool}/telemetry"
    span = "from=2025-11-20T10:00:00Z&to=2025-11-20T10:10:00Z"
    raw = client.get(f"{base}?{span}&metrics=speed_kmh,rpm", headers=viewer).json()
    assert raw["step"] == "raw" and len(raw["points"]) == MINUTES * 12
    assert set(raw["points"][0]["values"]) == {"speed_kmh", "rpm"} and raw["next_from"] is None
    first = client.get(f"{base}?{span}&limit=50", headers=viewer).json()
    assert len(first["points"]) == 50 and first["next_from"] == "2025-11-20T10:04:10Z"
    rest = client.get(f"{base}?from={first['next_from']}&to=2025-11-20T10:10:00Z",
                      headers=viewer).json()  # fmt: skip
    assert len(rest["points"]) == MINUTES * 12 - 50
    csv = client.get(f"{base}?{span}&metrics=rpm&format=csv", headers=viewer)
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0] == "ts,seq,rpm" and len(lines) == 1 + MINUTES * 12
    assert client.get(f"{base}?{span}&step=1h", headers=viewer).json()["step"] == "1h"
    problem(client.get(f"{base}?from=yesterday", headers=viewer), 400)
    problem(client.get(f"{base}?from=2025-11-20T10:00:00", headers=viewer), 400)
    problem(client.get(f"{base}?from=2025-11-20T11:00:00Z&to=2025-11-20T10:00:00Z",
                       headers=viewer), 400)  # fmt: skip
    too_long = problem(client.get(f"{base}?from=2025-01-01T00:00:00Z&to=2025-11-20T00:00:00Z"
                                  "&step=raw", headers=viewer), 400)  # fmt: skip
    assert "range too large" in too_long["detail"]
    problem(client.get(f"{base}?metrics=bad%20name", headers=viewer), 400)
    problem(client.get("/api/v1/devices/nobody/telemetry", headers=viewer), 404)


def test_alert_inbox_actions_and_timeline(client: httpx.Client, fleet: Fleet):
    viewer, operator = auth(fleet, "viewer"), auth(fleet, "operator")
    listed = client.get(f"/api/v1/alerts?device={fleet.hot}&status=open", headers=viewer).json()
    hot = next(a for a in listed["items"] if a["rule_id"] == "vehicle-overheating")
    assert client.get(f"/api/v1/alerts?device={fleet.cool}", headers=viewer).json()["items"] == []
    acked = client.post(f"/api/v1/alerts/{hot['id']}/ack", json={"note": "on it"}, headers=operator)
    assert acked.json() == {"id": hot["id"], "status": "acknowledged"}
    assert (
        "cannot ack"
        in problem(client.post(f"/api/v1/alerts/{hot['id']}/ack", headers=operator), 409)["detail"]
    )
    problem(client.post(f"/api/v1/alerts/{hot['id']}/assign", json={}, headers=operator), 422)
    client.post(f"/api/v1/alerts/{hot['id']}/assign", json={"to": "ana"}, headers=operator)
    shown = client.get(f"/api/v1/alerts/{hot['id']}", headers=viewer).json()
    assert shown["status"] == "acknowledged" and shown["assigned_to"] == "ana"
    steps = [(s["transition"], s["by"]) for s in shown["timeline"]]
    assert steps[0][1] == "engine"
    operator_name = f"({fleet.run} operator)"
    assert [t for t, by in steps if by.endswith(operator_name)] == ["acknowledged", "assigned"]
    problem(client.get("/api/v1/alerts/no-such-alert", headers=viewer), 404)
    problem(client.post("/api/v1/alerts/no-such-alert/resolve", headers=operator), 404)
    problem(client.get("/api/v1/alerts?since=soon", headers=viewer), 400)
    anomalies = client.get(f"/api/v1/anomalies?device={fleet.hot}", headers=viewer)
    assert anomalies.status_code == 200 and isinstance(anomalies.json()["items"], list)
    pump = client.get(f"/api/v1/anomalies?device={fleet.pump}", headers=viewer).json()["items"]
    assert [(a["detector"], a["metric"]) for a in pump] == [("relation", "flow_rate_m3h+power_kw")]
    assert pump[0]["explanation"] == [
        {"metric": "flow_rate_m3h", "expected": 118.5, "observed": 96.25},
        {"metric": "power_kw", "expected": 36.5, "observed": 44.1},
    ]


def test_recommendations_reports_and_fleet(client: httpx.Client, fleet: Fleet, database_url: str):
    viewer, operator = auth(fleet, "viewer"), auth(fleet, "operator")
    recs = client.get(f"/api/v1/recommendations?device={fleet.hot}", headers=viewer).json()["items"]
    assert [r["part"] for r in recs] == ["BRK-PAD-F"]
    rec = recs[0]["id"]
    assert (
        client.get(f"/api/v1/recommendations/{rec}", headers=viewer).json()["part"] == "BRK-PAD-F"
    )
    problem(client.post(f"/api/v1/recommendations/{rec}/modify", headers=operator), 400)
    done = client.post(f"/api/v1/recommendations/{rec}/accept", json={"actual_cost": 95.5},
                       headers=operator)  # fmt: skip
    assert done.json()["status"] == "accepted"
    problem(client.post(f"/api/v1/recommendations/{rec}/reject", headers=operator), 409)
    problem(client.get("/api/v1/recommendations/999999999", headers=viewer), 404)
    problem(client.get("/api/v1/reports/daily?date=1999-01-01", headers=viewer), 404)
    with psycopg.connect(psycopg_url(database_url)) as conn:
        rollups.backfill(conn, START, START + timedelta(hours=1), 15)
        reports.generate_daily(conn, START.date())
    report = client.get(f"/api/v1/reports/daily?date={START.date()}&device={fleet.hot}",
                        headers=viewer).json()  # fmt: skip
    assert report["device_id"] == fleet.hot and report["report"]
    problem(client.get("/api/v1/reports/daily?date=20251120", headers=viewer), 422)
    summary = client.get("/api/v1/fleet/summary", headers=viewer).json()
    assert summary["devices"] >= 3 and summary["by_status"]["online"] >= 2
    assert set(summary["open_alerts_by_severity"]) == {"info", "warning", "major", "critical"}
    spots = {
        p["device_id"]: p
        for p in client.get("/api/v1/fleet/positions", headers=viewer).json()["items"]
    }
    assert spots[fleet.cool]["lat"] == pytest.approx(52.6, abs=1e-4) and fleet.pump not in spots


def test_admin_keys_rules_and_routes(client: httpx.Client, fleet: Fleet):
    admin = auth(fleet, "admin")
    made = client.post(
        "/api/v1/apikeys", json={"name": "wall screen", "role": "viewer"}, headers=admin
    )
    assert made.status_code == 201 and made.json()["key"].startswith("tws_")
    screen = {"Authorization": f"Bearer {made.json()['key']}"}
    assert client.get("/api/v1/fleet/summary", headers=screen).status_code == 200
    listed = client.get("/api/v1/apikeys", headers=admin).json()["items"]
    assert all("key" not in k and "digest" not in k for k in listed)
    client.delete(f"/api/v1/apikeys/{made.json()['id']}", headers=admin)
    problem(client.get("/api/v1/fleet/summary", headers=screen), 401)
    problem(client.delete("/api/v1/apikeys/999999999", headers=admin), 404)
    problem(client.post("/api/v1/apikeys", json={"name": "x", "role": "root"}, headers=admin), 422)
    rule = {"type": "threshold", "metric": "rpm", "levels": [[6500, "warning"]],
            "profiles": ["passenger_car"]}  # fmt: skip
    rule_id = f"{fleet.run}-revs"
    put = client.put(f"/api/v1/rules/{rule_id}", json=rule, headers=admin)
    assert put.status_code == 200, put.text
    problem(client.put(f"/api/v1/rules/{rule_id}", json={"type": "nonsense"}, headers=admin), 400)
    assert client.post(f"/api/v1/rules/{rule_id}/disable", headers=admin).json()["enabled"] is False
    stored = {r["id"]: r for r in client.get("/api/v1/rules", headers=admin).json()["items"]}
    assert stored[rule_id]["enabled"] is False and stored[rule_id]["definition"]["metric"] == "rpm"
    assert client.delete(f"/api/v1/rules/{rule_id}", headers=admin).json()["deleted"] is True
    problem(client.post(f"/api/v1/rules/{rule_id}/enable", headers=admin), 404)
    route = {"channel": "webhook", "target": "http://127.0.0.1:9/hook", "secret": "s3"}
    assert client.put(f"/api/v1/routes/{fleet.run}", json=route, headers=admin).status_code == 200
    shown = {r["id"]: r for r in client.get("/api/v1/routes", headers=admin).json()["items"]}
    assert shown[fleet.run]["secret"] == "***"
    problem(client.put(f"/api/v1/routes/{fleet.run}", json={"channel": "webhook",
            "target": "ftp://x"}, headers=admin), 400)  # fmt: skip
    client.delete(f"/api/v1/routes/{fleet.run}", headers=admin)
    problem(client.delete(f"/api/v1/routes/{fleet.run}", headers=admin), 404)


def test_unknown_paths_and_methods_are_problems(client: httpx.Client, fleet: Fleet):
    viewer = auth(fleet, "viewer")
    problem(client.get("/api/v1/nothing-here", headers=viewer), 404)
    problem(client.delete("/api/v1/devices", headers=viewer), 405)
