"""Alerts from a running engine: lifecycle, replay, rules edited live, the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import msgspec
import psycopg
import pytest
import redis

from simulators.faults import Fault
from simulators.traffic import Traffic, TrafficConfig
from storage.alert_store import sync_builtin_rules
from storage.database import migrate, psycopg_url
from tests.conftest import ROOT, EngineProcess, fresh_database
from tests.integration.helpers import Publisher, count_rows, now_ms, q, wait_until
from twin.alerts.defaults import BUILTIN_RULES
from twin.alerts.rules import Rule


def alerts_of(url: str, device: str, rule: str) -> list[tuple]:
    return q(
        url,
        "SELECT id, status, severity, peak_severity, occurrences, first_seen, last_seen, "
        "resolved_by FROM alerts WHERE device_id = %s AND rule_id = %s ORDER BY id",
        device,
        rule,
    )


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", "alerts", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def overheating_drive(prefix: str, device_prefix: str) -> tuple[Traffic, int]:
    """One car, one reading a second for 15 minutes, overheating from minute 2 to 12 (the
    temperature climbs for two minutes: major past 105 °C first, then critical past 115 °C)."""
    start = now_ms() - 900_000
    config = TrafficConfig(
        devices=1, rate=1, duration_s=900, seed=4, prefix=prefix, id_prefix=device_prefix
    )
    car = Traffic(config, start).fleet[0]
    fault = Fault(
        car.device_id, "overheating", start + 120_000, start + 720_000, 0.75, ("coolant_temp_c",)
    )
    return Traffic(config, start, [fault]), start


def publish(pub: Publisher, traffic: Traffic) -> int:
    sent = 0
    for msg in [*traffic.attributes(), *traffic.messages()]:
        pub.send("", "", msg.payload, raw_topic=msg.topic, retain=msg.retain)
        sent += 1
    pub.flush()
    return sent


def test_overheating_opens_one_alert_escalates_resolves_and_replay_changes_nothing(
    engine_env: dict[str, str],
    database_url: str,
    mqtt_url: str,
    topic_prefix: str,
    redis_url: str,
    redis_prefix: str,
):
    engine = EngineProcess(engine_env).start()
    tag = topic_prefix.strip("/") + "-"
    traffic, start = overheating_drive(topic_prefix, tag)
    device = traffic.fleet[0].device_id
    pub = Publisher(mqtt_url, topic_prefix)
    publish(pub, traffic)

    def resolved() -> list[tuple]:
        rows = alerts_of(database_url, device, "vehicle-overheating")
        return rows if rows and rows[0][1] == "resolved" else []

    rows = wait_until(resolved, 30)
    assert len(rows) == 1, (rows, engine.log)  # one alert, however many hot readings
    alert_id, status, _sev, peak, _occurrences, first_seen, _last_seen, by = rows[0]
    assert (status, peak, by) == ("resolved", "critical", "engine")
    assert start + 120_000 <= first_seen.timestamp() * 1000 < start + 240_000
    timeline = q(
        database_url,
        "SELECT transition, severity, by FROM alert_timeline WHERE alert_id = %s ORDER BY at, id",
        alert_id,
    )
    steps = [t[0] for t in timeline]
    assert steps[0] == "opened" and steps[-1] == "resolved" and "escalated" in steps
    live = redis.Redis.from_url(redis_url, decode_responses=True)

    def streamed() -> list[str]:  # the Redis sink writes just after the PostgreSQL one
        entries = live.xrange(f"{redis_prefix}alerts")
        return [e["transition"] for _, e in entries if e["alert_id"] == alert_id]

    assert wait_until(lambda: streamed() if len(streamed()) >= len(steps) else [], 10) == steps

    before = q(database_url, "SELECT * FROM alerts WHERE device_id = %s ORDER BY id", device)
    before_steps = q(database_url, "SELECT count(*) FROM alert_timeline WHERE alert_id LIKE %s",
                     device + ":%")  # fmt: skip
    publish(pub, traffic)  # the same telemetry again
    time.sleep(3)
    assert q(database_url, "SELECT * FROM alerts WHERE device_id = %s ORDER BY id", device) == (
        before
    )
    assert q(database_url, "SELECT count(*) FROM alert_timeline WHERE alert_id LIKE %s",
             device + ":%") == before_steps  # fmt: skip
    pub.close()
    assert engine.stop() == 0


def test_people_acknowledge_assign_and_resolve_through_the_cli(
    engine_env: dict[str, str], database_url: str, mqtt_url: str, topic_prefix: str
):
    engine = EngineProcess(engine_env).start()
    device = f"{topic_prefix.strip('/')}-p1"
    pub = Publisher(mqtt_url, topic_prefix)
    pub.send(device, "attributes", {"kind": "machine", "profile": "pump"})
    t = now_ms() - 100_000
    for i in range(60):  # hot pump, still hot at the end: the alert stays open
        values = {"temperature_c": 90.0, "load_pct": 70.0}
        pub.send(device, "telemetry", {"ts": t + i * 1000, "seq": i, "values": values})
    pub.close()
    rows = wait_until(lambda: alerts_of(database_url, device, "machine-overheating"))
    alert_id = rows[0][0]
    assert rows[0][1] == "new" and engine.stop() == 0

    done = cli(engine_env, "list", "--status", "open", "--device", device)
    assert done.returncode == 0 and alert_id in done.stdout and "open for" in done.stdout
    # first seen about 100 s ago in device time (the readings started then)
    assert re.search(r"\s1m[3-5]\ds\s", done.stdout), done.stdout
    assert "open for" in cli(engine_env, "show", alert_id).stdout
    assert cli(engine_env, "ack", alert_id, "--by", "dana", "--note", "on it").returncode == 0
    again = cli(engine_env, "ack", alert_id, "--by", "dana")
    assert again.returncode != 0 and "cannot ack" in again.stderr
    assert cli(engine_env, "assign", alert_id, "--by", "dana", "--to", "lee").returncode == 0
    assert (
        cli(engine_env, "resolve", alert_id, "--by", "lee", "--note", "fan fixed").returncode == 0
    )
    missing = cli(engine_env, "show", "no-such-alert")
    assert missing.returncode != 0 and "no alert 'no-such-alert'" in missing.stderr
    assert "Traceback" not in missing.stderr
    shown = cli(engine_env, "show", alert_id)
    assert shown.returncode == 0
    for step in ("opened", "acknowledged", "assigned", "resolved", "fan fixed", "by lee",
                 "was open for"):  # fmt: skip
        assert step in shown.stdout, shown.stdout
    status = q(database_url, "SELECT status, acknowledged_by, assigned_to, resolved_by "
               "FROM alerts WHERE id = %s", alert_id)  # fmt: skip
    assert status == [("resolved", "dana", "lee", "lee")]


def test_rules_added_while_running_geofence_exit_and_silent_device(
    engine_env: dict[str, str], database_url: str, mqtt_url: str, topic_prefix: str
):
    engine = EngineProcess(dict(engine_env, TWIN_ALERT_RULES_RELOAD_S="1")).start()
    van, sensor = f"{topic_prefix.strip('/')}-van", f"{topic_prefix.strip('/')}-sensor"
    rules = [
        Rule(
            id=f"{van}-depot",
            type="geofence",
            devices=(van,),
            trigger="exit",
            lat=52.5,
            lon=13.4,
            radius_m=2000,
            severity="major",
            clear_s=0,
        ),
        Rule(id=f"{sensor}-silent", type="no_data", devices=(sensor,), silence_s=3, clear_s=0),
    ]
    with psycopg.connect(psycopg_url(database_url), autocommit=True) as conn:
        for rule in rules:
            conn.execute(
                "INSERT INTO alert_rules (id, definition) VALUES (%s, %s)",
                (rule.id, msgspec.json.encode(rule).decode()),
            )
    engine.wait_for("alert rules reloaded", 20)
    pub = Publisher(mqtt_url, topic_prefix)
    t = now_ms() - 10_000
    for i, lat in enumerate([52.5, 52.505, 52.53, 52.54]):  # leaves the 2 km circle
        pub.send(van, "telemetry", {"ts": t + i * 1000, "values": {"lat": lat, "lon": 13.4}})
    for i in range(5):
        pub.send(sensor, "telemetry", {"values": {"temperature_c": 20.0 + i}})
        time.sleep(0.2)
    pub.close()
    fence = wait_until(lambda: alerts_of(database_url, van, f"{van}-depot"))
    assert fence and fence[0][1] == "new" and fence[0][2] == "major"
    silent = wait_until(lambda: alerts_of(database_url, sensor, f"{sensor}-silent"), 30)
    assert silent and silent[0][1] == "new", engine.log
    detail = q(database_url, "SELECT detail FROM alerts WHERE id = %s", silent[0][0])[0][0]
    assert detail.startswith("silent for")
    assert json.loads(json.dumps(detail))  # plain text, no surprises
    assert engine.stop() == 0


def test_a_device_override_set_from_the_cli_applies_while_the_engine_runs(
    engine_env: dict[str, str], database_url: str, mqtt_url: str, topic_prefix: str, tmp_path
):
    env = dict(engine_env, TWIN_ALERT_RULES_RELOAD_S="1")
    engine = EngineProcess(env).start()
    tag = topic_prefix.strip("/")
    runs_hot, normal = f"{tag}-hot", f"{tag}-normal"
    rules = tmp_path / "rules.toml"
    rules.write_text(
        f"""
[[rules]]
id = "{runs_hot}-overheating"
type = "threshold"
name = "Overheating (runs hot by design)"
devices = ["{runs_hot}"]
overrides = "machine-overheating"
metric = "temperature_c"
levels = [[100, "major"]]
sustain_s = 30
"""
    )
    saved = cli(env, "rule", "set", str(rules))
    assert saved.returncode == 0 and "1 rule(s) saved" in saved.stdout, saved.stderr
    engine.wait_for("alert rules reloaded", 20)
    pub = Publisher(mqtt_url, topic_prefix)
    t = now_ms() - 100_000
    for device in (runs_hot, normal):
        pub.send(device, "attributes", {"kind": "machine", "profile": "pump"})
        for i in range(60):  # 90 °C for a minute: above a pump's 80 °C, below this one's 100
            values = {"temperature_c": 90.0, "load_pct": 70.0}
            pub.send(device, "telemetry", {"ts": t + i * 1000, "seq": i, "values": values})
    pub.close()
    assert wait_until(lambda: alerts_of(database_url, normal, "machine-overheating"), 30)
    time.sleep(1)
    assert q(database_url, "SELECT rule_id FROM alerts WHERE device_id = %s", runs_hot) == []
    assert engine.stop() == 0


def test_rules_are_listed_set_and_removed_from_the_cli_with_clear_errors(
    pg_admin_url: str, engine_env: dict[str, str], tmp_path
):
    with fresh_database(pg_admin_url) as url:  # a database of its own: shipped rules change
        env = dict(engine_env, TWIN_DATABASE_URL=url)
        migrate(url)
        with psycopg.connect(psycopg_url(url), autocommit=True) as conn:
            sync_builtin_rules(conn, BUILTIN_RULES)
        good = tmp_path / "fence.json"
        good.write_text(
            json.dumps(
                [
                    {"id": "yard", "type": "geofence", "lat": 52.5, "lon": 13.4,
                     "radius_m": 500, "trigger": "exit", "profiles": ["truck"]},
                    {"id": "slow-leak", "type": "rate", "metric": "pressure_bar",
                     "per_min": -0.5, "severity": "major"},
                ]
            )
        )  # fmt: skip
        assert cli(env, "rule", "set", str(good)).returncode == 0
        listed = cli(env, "rule", "list").stdout
        assert "yard" in listed and "profiles truck" in listed and "shipped" in listed
        shown = json.loads(cli(env, "rule", "show", "slow-leak").stdout)
        assert shown["per_min"] == -0.5 and shown["metric"] == "pressure_bar"

        for body, message in (
            ('{"id": "x", "type": "threshold", "metricc": "a"}', "unknown field `metricc`"),
            ('{"id": "x", "type": "threshold", "metric": "a"}', "bad.txt: alert rule 'x'"),
            ('{"id": "x", "type": "no_data", "severity": "dire"}', "severity must be one of"),
            ("id = ", "not JSON or TOML"),
        ):
            bad = tmp_path / "bad.txt"
            bad.write_text(body)
            done = cli(env, "rule", "set", str(bad))
            assert done.returncode == 2 and message in done.stderr, (body, done.stderr)
            assert "Traceback" not in done.stderr
        missing = cli(env, "rule", "set", str(tmp_path / "nope.toml"))
        assert missing.returncode == 2 and "cannot read" in missing.stderr

        assert cli(env, "rule", "disable", "yard").returncode == 0
        assert "shipped rule, disabled instead" in cli(env, "rule", "remove", "no-data").stdout
        assert "removed" in cli(env, "rule", "remove", "slow-leak").stdout
        unknown = cli(env, "rule", "enable", "slow-leak")
        assert unknown.returncode == 1 and "no alert rule 'slow-leak'" in unknown.stderr
        states = q(url, "SELECT id, enabled FROM alert_rules WHERE id IN ('yard', 'no-data', "
                   "'slow-leak') ORDER BY id")  # fmt: skip
        assert states == [("no-data", False), ("yard", False)]


@pytest.mark.parametrize("wake", ["on", "off"])
def test_a_device_that_died_while_the_engine_was_down_is_reported_after_the_restart(
    engine_env: dict[str, str],
    database_url: str,
    mqtt_url: str,
    topic_prefix: str,
    redis_url: str,
    redis_prefix: str,
    wake: str,
):
    tag = f"{topic_prefix.strip('/')}-{wake}"
    dead, back = f"{tag}-dead", f"{tag}-back"
    rule = Rule(id=f"{tag}-silent", type="no_data", devices=(dead, back), silence_s=3, clear_s=0)
    with psycopg.connect(psycopg_url(database_url), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO alert_rules (id, definition) VALUES (%s, %s)",
            (rule.id, msgspec.json.encode(rule).decode()),
        )
    env = dict(engine_env, TWIN_WAKE_HORIZON_H="0" if wake == "off" else "24")
    engine = EngineProcess(env).start()
    pub = Publisher(mqtt_url, topic_prefix)
    t = now_ms() - 1000
    for i in range(3):
        for device in (dead, back):
            body = {"ts": t + i * 100, "seq": i, "values": {"temperature_c": 20.0 + i}}
            pub.send(device, "telemetry", body)
    pub.flush()
    assert wait_until(
        lambda: count_rows(database_url, dead) == 3 and count_rows(database_url, back) == 3
    )
    assert engine.stop() == 0  # within the 3 s: nothing is silent yet
    assert q(database_url, "SELECT count(*) FROM alerts WHERE rule_id = %s", rule.id) == [(0,)]
    time.sleep(4)  # the first device dies while the engine is down
    engine = EngineProcess(env).start()
    for i in range(10):  # the other one carries on
        body = {"ts": now_ms(), "seq": 10 + i, "values": {"temperature_c": 30.0 + i}}
        pub.send(back, "telemetry", body)
        time.sleep(0.5)
    pub.close()
    alerted = q(database_url, "SELECT device_id FROM alerts WHERE rule_id = %s", rule.id)
    live = redis.Redis.from_url(redis_url, decode_responses=True)
    status = live.hget(f"{redis_prefix}twin:{dead}", "status")
    assert engine.stop() == 0
    if wake == "on":
        assert alerted == [(dead,)], engine.log
        assert status == "silent"
    else:  # without wake-ups the dead device's twin is never restored: nobody notices
        assert alerted == []
