"""Alert latency with the simulators: from fault start to the alert row and to the webhook.

A paced simulated fleet (one reading per device a second, as real devices send) publishes into
a running engine; the scenario overheats a share of its vehicles and machines. A local HTTP
receiver is the webhook route. Device time runs with the clock (the publisher sends each
reading when it is due), so times from both sides compare. A fault that heats a device past its
profile's warning limit must open exactly one alert; one that stays below it (a cool-running
conveyor gaining 30 °C, say: the anomaly detectors' business) must open none. Per alerted fault:

* fault → crossing: device time until the temperature passes the rule's first level (the
  physics of a heating engine or machine, not the software);
* crossing → opened: the rule's sustain time (30 s for the shipped overheating rules);
* opened → row: from the device timestamp of the reading that opened the alert to the
  committed ``alerts`` row (the engine's own delay);
* row → webhook: from the committed row to the request at the receiver (outbox + dispatcher);
* fault → row and fault → webhook: end to end.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator

import psycopg
import pytest

from flows.cli.simulate import publisher_config
from flows.runtime.settings import Settings
from simulators import scenario as scenarios
from simulators.publisher import Publisher
from simulators.traffic import TrafficConfig
from storage.database import migrate, psycopg_url
from tests.conftest import EngineProcess, fresh_database
from tests.integration.helpers import Receiver
from twin.clock import ms_to_datetime
from twin.profiles import ProfileBook

pytestmark = pytest.mark.bench

DEVICES, DURATION_S = 60, 200
SCENARIO = """
name = "overheating-latency"
[[faults]]
kind = "overheating"
share = 0.25
start_s = [20, 60]
duration_s = [100, 130]
severity = [0.8, 1.0]
"""
RULES = ("vehicle-overheating", "machine-overheating")


@pytest.fixture
def bench_db(pg_admin_url: str) -> Iterator[str]:
    with fresh_database(pg_admin_url) as url:
        migrate(url)
        yield url


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def test_alert_latency_from_fault_start(
    engine_env: dict[str, str], bench_db: str, mqtt_url: str, topic_prefix: str
):
    receiver = Receiver()
    with psycopg.connect(psycopg_url(bench_db), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO notification_routes (id, channel, target, min_severity) "
            "VALUES ('bench', 'webhook', %s, 'major')",
            (receiver.url,),
        )
    engine = EngineProcess(dict(engine_env, TWIN_DATABASE_URL=bench_db)).start()
    settings = Settings.from_env({"TWIN_MQTT_URL": mqtt_url})
    traffic = TrafficConfig(
        devices=DEVICES, rate=DEVICES, duration_s=DURATION_S, seed=7, prefix=topic_prefix
    )
    start_ms = time.time_ns() // 1_000_000
    config = publisher_config(settings, traffic, client_id=f"{topic_prefix.strip('/')}-sim")
    fleet = Publisher(config, start_ms=start_ms).fleet
    faults = scenarios.parse(SCENARIO).plan(fleet, traffic.seed, start_ms, DURATION_S)
    report = Publisher(config, faults=faults, start_ms=start_ms).run()
    time.sleep(5)  # the last notifications leave the outbox
    assert engine.stop() == 0

    limits = ProfileBook()
    peaks: dict[str, tuple[float, float]] = {}  # device → (peak in its fault, profile limit)
    with psycopg.connect(psycopg_url(bench_db)) as conn:
        for fault in faults:
            metric = fault.metrics[0]
            peak, profile = conn.execute(
                "SELECT max((t.values->>%s)::float8), min(d.profile) FROM telemetry t "
                "JOIN devices d USING (device_id) WHERE t.device_id = %s AND t.ts >= %s "
                "AND t.ts < %s",
                (metric, fault.device_id, ms_to_datetime(fault.start_ms),
                 ms_to_datetime(fault.end_ms)),
            ).fetchone()  # fmt: skip
            spec = limits.get(profile).spec(metric)
            limit = spec.warn_high if spec and spec.warn_high is not None else float("inf")
            peaks[fault.device_id] = (peak, limit)
        rows = conn.execute(
            "SELECT a.id, a.device_id, a.first_seen, t.at, a.created_at "
            "FROM alerts a JOIN alert_timeline t ON t.alert_id = a.id AND t.transition = 'opened' "
            "WHERE a.rule_id = ANY(%s)",
            (list(RULES),),
        ).fetchall()
    hooks: dict[str, float] = {}
    for (_, body), at in zip(receiver.requests, receiver.times, strict=True):
        payload = json.loads(body)
        if payload["transition"] == "opened" and payload["rule_id"] in RULES:
            hooks.setdefault(payload["alert_id"], at)
    receiver.close()

    by_device: dict[str, list[tuple]] = {}
    for row in rows:
        by_device.setdefault(row[1], []).append(row)
    stages: dict[str, list[float]] = {
        k: [] for k in ("crossing", "sustain", "engine", "webhook", "to_row", "to_webhook")
    }
    alerted, extra, below, missed, false_alerts = 0, 0, 0, [], []
    for fault in faults:
        mine = sorted(by_device.get(fault.device_id, []), key=lambda r: r[2])
        inside = [r for r in mine if r[2].timestamp() * 1000 >= fault.start_ms]
        peak, limit = peaks[fault.device_id]
        if peak < limit:  # a thermal fault that stayed within the profile's limits
            below += 1
            if inside:
                false_alerts.append(fault.device_id)
            continue
        if not inside:
            missed.append(fault.device_id)
            continue
        alerted += 1
        extra += len(inside) - 1
        alert_id, _, first_seen, opened_at, created_at = inside[0]
        fault_s = fault.start_ms / 1000
        stages["crossing"].append(first_seen.timestamp() - fault_s)
        stages["sustain"].append(opened_at.timestamp() - first_seen.timestamp())
        stages["engine"].append(created_at.timestamp() - opened_at.timestamp())
        stages["to_row"].append(created_at.timestamp() - fault_s)
        if alert_id in hooks:
            stages["webhook"].append(hooks[alert_id] - created_at.timestamp())
            stages["to_webhook"].append(hooks[alert_id] - fault_s)

    print(
        f"\nalert latency: {DEVICES} devices, 1 reading/s each for {DURATION_S}s "
        f"({report.readings} readings), {len(faults)} overheating faults: "
        f"{len(faults) - below} passed their profile's limit, {alerted} of them alerted "
        f"({extra} extra alerts), {len(stages['webhook'])} webhooks received; {below} stayed "
        f"below the limit, {len(false_alerts)} of them alerted"
    )
    labels = {
        "crossing": "fault start -> threshold crossed (device time, physics)",
        "sustain": "crossed -> alert opened (rule sustain)",
        "engine": "opening reading -> alert row committed",
        "webhook": "alert row -> webhook received",
        "to_row": "fault start -> alert row",
        "to_webhook": "fault start -> webhook received",
    }
    print(f"{'stage':<58} {'p50':>9} {'p95':>9} {'max':>9}")
    for key, label in labels.items():
        values = stages[key]
        if not values:
            continue
        scale, unit = (1000, "ms") if key in ("engine", "webhook") else (1, "s")
        print(
            f"{label:<58} "
            + " ".join(
                f"{v * scale:>7.{0 if unit == 'ms' else 1}f}{unit:<2}"
                for v in (statistics.median(values), pct(values, 95), max(values))
            )
        )
    assert not missed, f"over the limit but no alert: {missed}"
    assert not false_alerts, f"alerts below the limit: {false_alerts}"
    assert extra == 0, "an overheating fault opened more than one alert"
    assert len(stages["webhook"]) == alerted
