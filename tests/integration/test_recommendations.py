"""Recommendations kept current by a running engine, and what people do with them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis

from storage.database import connect, migrate
from storage.reference import load_defaults
from tests.conftest import ROOT, EngineProcess, fresh_database
from tests.integration.helpers import Publisher, now_ms, q, wait_until
from twin.maintenance.defaults import PARTS
from twin.maintenance.recommend import RecommenderConfig

DAY_MS = 86_400_000


@pytest.fixture
def db(pg_admin_url: str) -> Iterator[str]:
    with fresh_database(pg_admin_url) as url:
        migrate(url)
        with connect(url) as conn:
            load_defaults(conn)
        yield url


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", "recommendations", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def drive(pub: Publisher, car: str, start_ms: int, start_km: float, days: int) -> float:
    """A reading every two hours at 80 km a day; returns the odometer at the end."""
    km = start_km
    for i in range(days * 12):
        km += 80 / 12
        values = {"odometer_km": round(km, 1), "speed_kmh": 50.0, "rpm": 2000.0}
        pub.send(car, "telemetry", {"ts": start_ms + i * DAY_MS // 12, "seq": i, "values": values})
    pub.flush()
    return km


def test_recommendations_follow_the_twin_services_and_feedback(
    db: str, engine_env: dict[str, str], mqtt_url: str, topic_prefix: str, redis_url: str,
    redis_prefix: str,
):  # fmt: skip
    env = dict(engine_env, TWIN_DATABASE_URL=db)
    engine = EngineProcess(env).start()
    car = f"{topic_prefix.strip('/')}-car"
    pub = Publisher(mqtt_url, topic_prefix)
    attributes = {
        "kind": "vehicle", "profile": "passenger_car", "model": "Golf",
        "dealer_code": "DLR004", "region_code": "NORTH", "terrain_type": "HILLY",
        "season_code": "WINTER",
    }  # fmt: skip
    pub.send(car, "attributes", attributes, retain=False)
    start = now_ms() - 3 * DAY_MS
    pads = {"type": "service", "odometer_km": 30_000, "parts_replaced": ["BRK-PAD-F"]}
    pub.send(car, "events", {"ts": start - 400 * DAY_MS, **pads})
    rest = [p.code for p in PARTS if p.fits("vehicle", "passenger_car") and p.code != "BRK-PAD-F"]
    major = {"type": "service", "service_type": "MAJOR", "odometer_km": 50_000}
    pub.send(car, "events", {"ts": start - 100 * DAY_MS, **major, "parts_replaced": rest})
    km = drive(pub, car, start, 57_760, 3)  # ends at 58,000 km

    def open_recs() -> list[tuple]:
        return q(db, "SELECT part, rank, final_confidence, reasoning FROM part_recommendations "
                 "WHERE device_id = %s AND status = 'open' ORDER BY rank", car)  # fmt: skip

    final = f"{km - 30_000:,.0f} of 30,000 km since the last replacement"

    def pads() -> tuple | None:  # evaluated at the last reading (earlier ones are updated)
        found = [r for r in open_recs() if r[0] == "BRK-PAD-F" and r[3][0]["why"] == final]
        return found[0] if found else None

    assert wait_until(pads, 30), (open_recs(), engine.log)
    recs = {part: (rank, reasoning) for part, rank, _, reasoning in open_recs()}
    assert recs["BRK-PAD-F"][0] == 1  # 28,000 of 30,000 km; everything else serviced at 50,000
    version = RecommenderConfig().version
    assert q(db, "SELECT name FROM model_versions WHERE version = %s", version) == [
        ("recommender",)
    ]
    assert q(db, "SELECT DISTINCT model_version FROM part_recommendations") == [(version,)]
    assert [step["factor"] for step in recs["BRK-PAD-F"][1]][:2] == ["wear", "terrain"]
    live = redis.Redis.from_url(redis_url, decode_responses=True)
    summary = wait_until(lambda: live.hget(f"{redis_prefix}twin:{car}", "recs_top"), 10)
    assert summary == open_recs()[0][0]
    assert live.hget(f"{redis_prefix}twin:{car}", "recs_open") == str(len(open_recs()))

    # the workshop replaces the front pads: that recommendation is cleared
    pub.send(car, "events", {"ts": now_ms(), "type": "service", "odometer_km": round(km),
                             "parts_replaced": ["BRK-PAD-F"]})  # fmt: skip
    pub.close()
    assert wait_until(lambda: "BRK-PAD-F" not in [r[0] for r in open_recs()], 30), engine.log
    cleared = q(db, "SELECT status FROM part_recommendations WHERE device_id = %s AND "
                "part = 'BRK-PAD-F'", car)  # fmt: skip
    assert cleared == [("cleared",)]
    assert engine.stop() == 0

    # nothing changed since: a refresh writes nothing
    before = q(db, "SELECT id, updated_at FROM part_recommendations WHERE device_id = %s "
               "ORDER BY id", car)  # fmt: skip
    refreshed = cli(env, "refresh", "--device", car)
    assert refreshed.returncode == 0, refreshed.stderr
    assert "0 opened, 0 updated" in refreshed.stdout and "0 cleared" in refreshed.stdout
    assert q(db, "SELECT id, updated_at FROM part_recommendations WHERE device_id = %s "
             "ORDER BY id", car) == before  # fmt: skip

    # feedback
    first, second = [r[0] for r in q(db, "SELECT id FROM part_recommendations WHERE "
                     "device_id = %s AND status = 'open' ORDER BY rank LIMIT 2", car)]  # fmt: skip
    assert cli(env, "accept", str(first), "--by", "desk", "--cost", "3400").returncode == 0
    assert (
        cli(env, "reject", str(second), "--by", "desk", "--reason", "done elsewhere").returncode
        == 0
    )
    again = cli(env, "accept", str(first), "--by", "desk")
    assert again.returncode == 1 and "feedback was given" in again.stderr
    missing = cli(env, "modify", "999999", "--by", "desk", "--part", "X")
    assert missing.returncode == 1 and "no recommendation 999999" in missing.stderr
    no_part = cli(env, "modify", str(first), "--by", "desk")
    assert no_part.returncode == 2 and "needs --part" in no_part.stderr
    stats = cli(env, "stats").stdout
    assert "100%" in stats and "0%" in stats
    shown = cli(env, "show", str(first)).stdout
    assert "reasoning:" in shown and "wear" in shown and "accepted" in shown
    listed = cli(env, "list", "--device", car, "--status", "all").stdout
    assert "cleared" in listed and "accepted" in listed and "rejected" in listed
    # decided parts are not recommended again at the next evaluation
    decided = q(db, "SELECT part FROM part_recommendations WHERE id = ANY(%s)", [first, second])
    assert cli(env, "refresh", "--device", car).returncode == 0
    reopened = {part for (part,) in q(db, "SELECT part FROM part_recommendations WHERE "
                                      "device_id = %s AND status = 'open'", car)}  # fmt: skip
    assert not reopened & {part for (part,) in decided}
