"""``twin loadtest`` against a running engine: its numbers agree with PostgreSQL itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg

from storage.database import psycopg_url
from tests.conftest import ROOT, EngineProcess


def loadtest(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", "loadtest", "--settle", "3", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def rows_of(database_url: str, prefix: str) -> tuple[int, int]:
    with psycopg.connect(psycopg_url(database_url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT device_id) FROM telemetry WHERE device_id LIKE %s",
            (prefix + "%",),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_load_report_matches_a_direct_count(
    engine: EngineProcess, engine_env: dict[str, str], database_url: str, tmp_path: Path
):
    engine.start()
    out = tmp_path / "load.json"
    done = loadtest(
        engine_env, "--devices", "50", "--rate", "500", "--duration", "4", "--report", str(out)
    )
    assert done.returncode == 0, done.stderr + engine.log
    report = json.loads(out.read_text())
    rows, devices = rows_of(database_url, report["device_prefix"])
    assert report["published"] == 2000
    assert report["delivered"] == rows == 2000 and devices == 50
    assert report["lost"] == 0 and report["duplicates"] == 0
    pg, live = report["latency_pg_ms"], report["latency_redis_ms"]
    assert 0 <= pg["p50"] <= pg["p95"] <= pg["p99"] <= pg["max"] < 10_000
    assert 0 <= live["p50"] <= live["p99"] <= live["max"] < 10_000
    assert "requested/s" in done.stdout and "2000" in done.stdout  # the printed table
    assert engine.stop() == 0


def test_ramp_reports_each_level_and_the_highest_that_held(
    engine: EngineProcess, engine_env: dict[str, str], database_url: str, tmp_path: Path
):
    engine.start()
    out = tmp_path / "ramp.json"
    done = loadtest(
        engine_env, "--devices", "20", "--ramp", "--ramp-start", "100", "--ramp-factor", "2",
        "--max-rate", "400", "--duration", "2", "--report", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + engine.log
    report = json.loads(out.read_text())
    assert [lv["requested_rate"] for lv in report["levels"]] == [100, 200, 400]
    for level in report["levels"]:
        assert level["delivered"] == rows_of(database_url, level["device_prefix"])[0]
        assert level["lost"] == 0
    assert report["sustained_rate"] == 400
    assert "highest sustained rate: 400" in done.stdout
    assert engine.stop() == 0


def test_load_metrics_count_what_was_published_and_found(
    engine: EngineProcess, database_url: str, redis_url: str, mqtt_url: str, topic_prefix: str
):
    from urllib.parse import urlsplit

    from simulators.loadtest import LoadTest
    from simulators.metrics import PublishMetrics
    from simulators.publisher import PublisherConfig
    from simulators.traffic import TrafficConfig

    engine.start()
    parts = urlsplit(mqtt_url)
    found = PublishMetrics()
    test = LoadTest(
        publisher=PublisherConfig(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 1883,
            traffic=TrafficConfig(devices=10, rate=200, duration_s=2, prefix=topic_prefix),
        ),
        database_url=database_url,
        redis_url=None,
        settle_s=3,
        say=lambda _: None,
        metrics=found,
    )
    results = [test.level(), test.level(300)]
    value = found.registry.get_sample_value
    assert value("twin_sim_readings_published_total") == sum(r.published for r in results)
    assert value("twin_load_delivered_readings_total") == sum(r.delivered for r in results)
    assert value("twin_load_delivered_readings_total") == 1000
    assert value("twin_load_lost_readings_total") == 0
    assert value("twin_sim_target_readings_per_second") == 300  # the level running last
    assert engine.stop() == 0
