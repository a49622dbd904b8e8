"""``/twins/{id}?at=``: the twin as it was, from stored history and telemetry replayed.

The fleet keeps one history snapshot per two minutes of device time (``HISTORY_S``) and takes
a snapshot every 30 s, at 10:00:00, 10:00:30, ... so its history rows hold the twins at 10:00,
10:02, 10:04, 10:06 and 10:08; readings come every 5 s.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from storage import twin_history
from storage.database import psycopg_url
from tests.integration.api_fleet import T0, Fleet, auth, problem

START = datetime.fromtimestamp(T0 / 1000, UTC)


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def at(fleet: Fleet, client: httpx.Client, device: str, when: datetime) -> dict:
    got = client.get(
        f"/api/v1/twins/{device}",
        params={"at": when.isoformat()},
        headers=auth(fleet, "viewer"),
    )
    assert got.status_code == 200, got.text
    return got.json()


def stored(database_url: str, device: str, when: datetime) -> dict:
    with psycopg.connect(psycopg_url(database_url)) as conn:
        row = conn.execute(
            'SELECT "values" FROM telemetry WHERE device_id = %s AND ts = %s', (device, when)
        ).fetchone()
    assert row is not None
    return row[0]


def test_history_keeps_one_snapshot_per_interval_without_baselines(database_url: str, fleet: Fleet):
    with psycopg.connect(psycopg_url(database_url)) as conn:
        rows = conn.execute(
            "SELECT bucket, last_seen, state FROM twin_history WHERE device_id = %s "
            "ORDER BY bucket",
            (fleet.hot,),
        ).fetchall()
    minutes = [0, 2, 4, 6, 8]
    assert [r[0] for r in rows] == [START + timedelta(minutes=m) for m in minutes]
    assert [r[1] for r in rows] == [START + timedelta(minutes=m) for m in minutes]
    assert all("detectors" not in r[2] and "recent" not in r[2] for r in rows)
    assert rows[1][2]["latest"]["coolant_temp_c"] == 90.0 + 12.0  # at 120 s


def test_twin_at_a_time_replays_the_readings_after_the_nearest_history(
    client: httpx.Client, database_url: str, fleet: Fleet
):
    when = START + timedelta(seconds=190)  # 10:03:10: history of 10:02 and 14 readings
    twin = at(fleet, client, fleet.hot, when)
    assert twin["source"] == "history"
    assert twin["resolution"]["base"] == "history"
    assert moment(twin["resolution"]["base_last_seen"]) == START + timedelta(minutes=2)
    assert twin["resolution"]["replayed_readings"] == 14
    assert twin["values"] == stored(database_url, fleet.hot, when)
    assert twin["values"]["coolant_temp_c"] == 109.0
    assert twin["readings"] == 39  # seconds 0, 5, ..., 190
    assert twin["last_seen_ms"] == T0 + 190_000
    assert {moment(t) for t in twin["values_at"].values()} == {when}
    later = START + timedelta(seconds=192)  # between two readings: the one before counts
    assert at(fleet, client, fleet.hot, later)["values"] == twin["values"]


def test_twin_at_a_time_shows_the_alerts_open_then(client: httpx.Client, fleet: Fleet):
    before = at(fleet, client, fleet.hot, START + timedelta(minutes=2))
    after = at(fleet, client, fleet.hot, START + timedelta(minutes=8))
    assert before["alerts_open"] == []
    assert [a["rule_id"] for a in after["alerts_open"]] == ["vehicle-overheating"]
    assert at(fleet, client, fleet.cool, START + timedelta(minutes=8))["alerts_open"] == []


def test_twin_at_the_end_starts_from_the_current_snapshot(client: httpx.Client, fleet: Fleet):
    twin = at(fleet, client, fleet.pump, START + timedelta(seconds=598))
    assert twin["resolution"]["base"] == "snapshot"
    assert twin["resolution"]["replayed_readings"] == 0
    assert twin["last_seen_ms"] == T0 + 595_000
    assert twin["operating_hours"] > 0.15  # running at 70 % load for ten minutes


def test_twin_at_rejects_what_it_cannot_answer(client: httpx.Client, fleet: Fleet):
    viewer = auth(fleet, "viewer")

    def get(device: str, when: str) -> httpx.Response:
        return client.get(f"/api/v1/twins/{device}", params={"at": when}, headers=viewer)

    assert "RFC 3339" in problem(get(fleet.hot, "yesterday"), 400)["detail"]
    assert "offset" in problem(get(fleet.hot, "2025-11-20T10:03:00"), 400)["detail"]
    assert "not come" in problem(get(fleet.hot, "2999-01-01T00:00:00Z"), 400)["detail"]
    early = (START - timedelta(minutes=1)).isoformat()
    assert "sent nothing" in problem(get(fleet.hot, early), 404)["detail"]
    assert "no device" in problem(get(f"{fleet.run}-none", early), 404)["detail"]


def test_without_history_the_twin_is_replayed_from_its_first_reading(
    client: httpx.Client, database_url: str, fleet: Fleet
):
    when = START + timedelta(seconds=190)
    with_history = at(fleet, client, fleet.cool, when)
    with psycopg.connect(psycopg_url(database_url)) as conn:
        kept = twin_history.prune(conn, 30, START + timedelta(days=40))
        conn.commit()
    assert kept >= 5
    twin = at(fleet, client, fleet.cool, when)
    assert twin["resolution"]["base"] == "first reading"
    assert twin["resolution"]["replayed_readings"] == 39
    for field in ("values", "values_at", "readings", "km_per_day", "last_seen_ms"):
        assert twin[field] == with_history[field], field
