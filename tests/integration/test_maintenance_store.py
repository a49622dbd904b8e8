"""Maintenance reference data and service history in PostgreSQL, and service events in."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from storage.database import connect, migrate, psycopg_url
from storage.reference import load_catalog, load_defaults, record_service, replacements
from tests.conftest import ROOT, EngineProcess, fresh_database
from tests.integration.helpers import Publisher, now_ms, wait_until
from tests.unit.test_recommend import NOW, fixture_car, shipped
from twin.maintenance.recommend import recommend
from twin.maintenance.service import ServiceRecord


@pytest.fixture(scope="module")
def db(pg_admin_url: str) -> Iterator[str]:
    with fresh_database(pg_admin_url) as url:
        migrate(url)
        yield url


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=ROOT,
        env={"TWIN_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_shipped_reference_data_loads_once_and_reads_back_whole(db: str):
    with connect(db) as conn:
        first = load_defaults(conn)
        again = load_defaults(conn)
        stored = load_catalog(conn)
    assert first["parts"] == len(shipped().parts) and first["dealers"] == 39
    assert set(again.values()) == {0}  # nothing twice
    expected = shipped()
    assert stored.parts == expected.parts
    assert stored.stock == expected.stock and stored.schedules == expected.schedules
    assert stored.seasons == expected.seasons and stored.terrains == expected.terrains
    assert {r.name: r for r in stored.rules} == {r.name: r for r in expected.rules}
    # the same facts give the same recommendations from stored data as from the shipped data
    assert recommend(fixture_car(), stored, NOW) == recommend(fixture_car(), expected, NOW)


def test_operator_edits_survive_a_load_unless_replaced(db: str):
    with connect(db) as conn:
        load_defaults(conn)
        conn.execute("UPDATE parts SET cost = 5000 WHERE code = 'BRK-PAD-F'")
        conn.commit()
        load_defaults(conn)
        assert load_catalog(conn).parts["BRK-PAD-F"].cost == 5000
        load_defaults(conn, replace=True)
        assert load_catalog(conn).parts["BRK-PAD-F"].cost == 4200


def test_service_history_gives_the_latest_replacement_of_each_part(db: str):
    at = datetime(2025, 6, 1, tzinfo=UTC)
    with connect(db) as conn:
        for days, km, parts in ((0, 40_000, ("BRK-PAD-F", "ENG-OIL")), (90, 48_000, ("ENG-OIL",))):
            record = ServiceRecord(
                device_id="svc-1",
                at=at + timedelta(days=days),
                parts_replaced=parts,
                odometer_km=km,
                source="cli",
            )
            assert record_service(conn, record)
            assert not record_service(conn, record)  # the same service twice: one record
        latest = replacements(conn, ["svc-1", "nobody"])
    assert set(latest) == {"svc-1"}
    assert latest["svc-1"]["ENG-OIL"].odometer_km == 48_000
    assert latest["svc-1"]["BRK-PAD-F"].at == at


def test_a_service_event_through_the_engine_is_recorded_once(
    engine_env: dict[str, str], database_url: str, mqtt_url: str, topic_prefix: str
):
    engine = EngineProcess(engine_env).start()
    device = f"{topic_prefix.strip('/')}-car"
    pub = Publisher(mqtt_url, topic_prefix)
    event = {
        "ts": now_ms() - 60_000,
        "type": "service",
        "odometer_km": 58_000,
        "parts_replaced": ["BRK-PAD-F", "ENG-OIL"],
        "dealer_code": "DLR004",
        "cost": 7400,
        "notes": "pads and oil",
    }
    pub.send(device, "events", event)
    pub.send(device, "events", event)  # redelivered
    pub.close()

    def rows() -> list[tuple]:
        with psycopg.connect(psycopg_url(database_url)) as conn:
            return conn.execute(
                "SELECT parts_replaced, odometer_km, dealer, cost, notes, service_type "
                "FROM service_history WHERE device_id = %s",
                (device,),
            ).fetchall()

    assert wait_until(rows), engine.log
    assert engine.stop() == 0
    assert rows() == [(["BRK-PAD-F", "ENG-OIL"], 58_000.0, "DLR004", 7400.0, "pads and oil",
                       "REGULAR")]  # fmt: skip


def test_catalog_and_service_commands(db: str):
    loaded = cli(db, "catalog", "load")
    assert loaded.returncode == 0 and "rows written" in loaded.stdout
    shown = cli(db, "catalog", "show", "--parts")
    assert shown.returncode == 0 and "39 dealers" in shown.stdout and "BRK-PAD-F" in shown.stdout
    when = ("--at", "2025-09-01T10:00:00+00:00")
    done = cli(db, "service", "record", "cli-car", "--parts", "BRK-PAD-F", "TYR-ROTATE",
               "--odometer", "52000", *when, "--dealer", "DLR004")  # fmt: skip
    assert done.returncode == 0 and "recorded" in done.stdout, done.stderr
    again = cli(db, "service", "record", "cli-car", "--parts", "BRK-PAD-F", "TYR-ROTATE", *when)
    assert "already recorded" in again.stdout
    listed = cli(db, "service", "list", "cli-car")
    assert "BRK-PAD-F TYR-ROTATE" in listed.stdout and "52,000 km" in listed.stdout
    bad = cli(db, "service", "record", "cli-car", "--parts", "FLUX-CAPACITOR")
    assert bad.returncode == 2 and "unknown part codes: FLUX-CAPACITOR" in bad.stderr
    negative = cli(db, "service", "record", "cli-car", "--odometer", "-5")
    assert negative.returncode == 2 and "may not be negative" in negative.stderr
    bad_time = cli(db, "service", "record", "cli-car", "--at", "yesterday")
    assert bad_time.returncode == 2 and "ISO 8601" in bad_time.stderr
