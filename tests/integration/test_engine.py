"""The engine end to end: real broker → `twin run` → partitioned PostgreSQL table and Redis."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time

import pytest
import redis

from tests.conftest import EngineProcess
from tests.integration.helpers import Publisher, count_rows, now_ms, q, wait_until


@pytest.mark.parametrize("group", ["shared", "plain"])
def test_readings_of_every_form_reach_postgres_and_redis(
    engine: EngineProcess,
    database_url: str,
    redis_url: str,
    redis_prefix: str,
    mqtt_url: str,
    topic_prefix: str,
    group: str,
):
    if group == "plain":  # TWIN_MQTT_GROUP="": one plain subscription, attributes included
        engine.env["TWIN_MQTT_GROUP"] = ""
    engine.start()
    assert ("plain subscription" in engine.log) == (group == "plain")
    run = topic_prefix.strip("/")
    car, pump = f"{run}-car", f"{run}-pump"
    pub = Publisher(mqtt_url, topic_prefix)
    t = now_ms()
    pub.send(
        car, "attributes", {"kind": "vehicle", "profile": "passenger_car", "vin": "V1"}, retain=True
    )
    pub.send(pump, "attributes", {"kind": "machine", "profile": "pump"})
    pub.send(
        car,
        "telemetry",
        {
            "ts": t - 3000,
            "seq": 1,
            "values": {"speed_kmh": 40.0, "odometer_km": 1000.0, "lat": 52.5, "lon": 13.4},
        },
    )
    pub.send(
        car,
        "telemetry",
        [
            {"ts": t - 2000, "seq": 2, "values": {"speed_kmh": 50.0, "odometer_km": 1000.01}},
            {"ts": t - 1000, "seq": 3, "values": {"speed_kmh": 60.0, "odometer_km": 1000.03}},
        ],
    )
    pub.send(
        car,
        "telemetry",
        {
            "ts": t - 2000,
            "seq": 2,  # redelivered: stored once
            "values": {"speed_kmh": 50.0, "odometer_km": 1000.01},
        },
    )
    pub.send(pump, "telemetry", {"temperature_c": 55.5, "load_pct": 70.0})  # flat form
    pub.send(car, "events", {"ts": t - 500, "type": "dtc", "code": "P0217"})
    pub.flush()

    assert wait_until(lambda: count_rows(database_url, car) == 3), engine.log
    assert wait_until(lambda: count_rows(database_url, pump) == 1)
    rows = q(
        database_url,
        "SELECT seq, \"values\"->>'speed_kmh', tableoid::regclass::text "
        "FROM telemetry WHERE device_id = %s ORDER BY ts",
        car,
    )
    assert [(r[0], r[1]) for r in rows] == [(1, "40.0"), (2, "50.0"), (3, "60.0")]
    assert all(r[2].startswith("telemetry_p") for r in rows)  # stored in a daily partition

    devices = dict(
        q(
            database_url,
            "SELECT device_id, profile FROM devices WHERE device_id IN (%s, %s)",
            car,
            pump,
        )
    )
    assert devices == {car: "passenger_car", pump: "pump"}
    assert wait_until(
        lambda: q(
            database_url, "SELECT type, body->>'code' FROM device_events WHERE device_id = %s", car
        )
    ) == [("dtc", "P0217")]

    r = redis.Redis.from_url(redis_url, decode_responses=True)
    live = wait_until(lambda: r.hgetall(f"{redis_prefix}twin:{car}"))
    assert wait_until(lambda: r.hget(f"{redis_prefix}twin:{car}", "speed_kmh") == "60.0"), (
        r.hgetall(f"{redis_prefix}twin:{car}")
    )
    live = r.hgetall(f"{redis_prefix}twin:{car}")
    assert live["speed_kmh"] == "60.0" and live["profile"] == "passenger_car"
    assert live["status"] == "online" and int(live["last_seen_ms"]) == t - 1000
    assert 0 < r.ttl(f"{redis_prefix}twin:{car}") <= 300
    assert r.geopos(f"{redis_prefix}twin:geo", car)[0] is not None
    pub.close()
    assert engine.stop() == 0, engine.log


BAD = [
    ("bad_json", "telemetry", b'{"values": {"speed_kmh": 5'),
    ("bad_type", "telemetry", b'{"values": {"speed_kmh": "fast"}}'),
    ("non_finite", "telemetry", b'{"values": {"speed_kmh": NaN}}'),
    ("bad_ts", "telemetry", b'{"ts": "soon", "values": {"speed_kmh": 1}}'),
    ("ts_too_old", "telemetry", b'{"ts": 1000, "values": {"speed_kmh": 1}}'),
    ("bad_shape", "telemetry", b"[]"),
    ("bad_metric_name", "telemetry", b'{"values": {"speed kmh": 1}}'),
    ("out_of_range", "telemetry", b'{"values": {"coolant_temp_c": 900}}'),
    ("bad_type", "attributes", b'{"kind": "rocket"}'),
]


def test_bad_input_lands_in_dead_letters_and_good_neighbours_survive(
    engine: EngineProcess,
    database_url: str,
    mqtt_url: str,
    topic_prefix: str,
):
    engine.start()
    run = topic_prefix.strip("/")
    dev = f"{run}-bad"
    pub = Publisher(mqtt_url, topic_prefix)
    pub.send(dev, "attributes", {"kind": "vehicle", "profile": "passenger_car"})
    t = now_ms()
    pub.send(dev, "telemetry", {"ts": t - 100, "values": {"speed_kmh": 10.0}})
    for _, channel, payload in BAD:
        pub.send(dev, channel, payload)
    future = json.dumps({"ts": t + 3_600_000, "values": {"speed_kmh": 1}}).encode()
    pub.send(dev, "telemetry", future)
    pub.send(dev, "telemetry", b"x" * (300 * 1024))  # over the 256 KiB limit
    pub.send(dev, "telemetry", b"{}", raw_topic=f"{topic_prefix}devices/{dev}/telemetry/extra")
    pub.send(
        dev,
        "telemetry",
        [
            {"ts": t - 50, "values": {"speed_kmh": 20.0}},
            {"ts": t - 40, "values": {"speed_kmh": "x"}},
            {"ts": t - 30, "values": {"speed_kmh": 30.0}},
        ],
    )
    pub.flush()
    expected = sorted(
        [r for r, _, _ in BAD] + ["ts_in_future", "oversize", "bad_topic", "bad_type"]
    )

    def reasons() -> list[str]:
        return sorted(
            r
            for (r,) in q(
                database_url,
                "SELECT reason FROM dead_letters WHERE topic LIKE %s",
                f"{topic_prefix}%",
            )
        )

    assert wait_until(lambda: reasons() == expected), engine.log
    time.sleep(0.5)  # nothing arrives twice
    assert reasons() == expected, "\n".join(
        map(
            str,
            q(
                database_url,
                "SELECT reason, topic, detail FROM dead_letters WHERE topic LIKE %s",
                f"{topic_prefix}%",
            ),
        )
    )
    payloads = dict(
        q(
            database_url,
            "SELECT reason, payload FROM dead_letters WHERE device_id = %s AND reason = 'bad_json'",
            dev,
        )
    )
    assert bytes(payloads["bad_json"]) == b'{"values": {"speed_kmh": 5'
    assert wait_until(lambda: count_rows(database_url, dev) == 3)
    speeds = [
        float(v)
        for (v,) in q(
            database_url,
            "SELECT \"values\"->>'speed_kmh' FROM telemetry WHERE device_id = %s ORDER BY ts",
            dev,
        )
    ]
    assert speeds == [10.0, 20.0, 30.0]
    pub.close()
    assert engine.stop() == 0


def test_restart_warms_twins_from_snapshots(
    engine: EngineProcess,
    database_url: str,
    redis_url: str,
    redis_prefix: str,
    mqtt_url: str,
    topic_prefix: str,
):
    engine.start()
    run = topic_prefix.strip("/")
    car = f"{run}-car"
    pub = Publisher(mqtt_url, topic_prefix)
    pub.send(car, "attributes", {"kind": "vehicle", "profile": "passenger_car"})
    t0 = now_ms() - 20 * 60_000
    for i in range(10):  # ten minutes at 60 km/h: 1 km a minute
        pub.send(
            car,
            "telemetry",
            {
                "ts": t0 + i * 60_000,
                "seq": i,
                "values": {"odometer_km": 500.0 + i, "speed_kmh": 60.0},
            },
        )
    pub.flush()
    assert wait_until(lambda: count_rows(database_url, car) == 10), engine.log
    assert engine.stop() == 0, engine.log  # SIGTERM: drain, flush, final snapshots
    assert "engine stopped" in engine.log

    snap = q(database_url, "SELECT state FROM twin_snapshots WHERE device_id = %s", car)
    assert snap and snap[0][0]["readings"] == 10 and snap[0][0]["messages"] == 11

    engine.start()
    for i in range(10, 15):
        pub.send(
            car,
            "telemetry",
            {
                "ts": t0 + i * 60_000,
                "seq": i,
                "values": {"odometer_km": 500.0 + i, "speed_kmh": 60.0},
            },
        )
    pub.flush()
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    key = f"{redis_prefix}twin:{car}"
    assert wait_until(lambda: r.hget(key, "readings") == "15"), engine.log
    live = r.hgetall(key)
    assert live["messages"] == "16" and live["profile"] == "passenger_car"
    assert float(live["km_per_day"]) == pytest.approx(1440.0, rel=0.01)
    assert live["usage_category"] == "HIGH"
    pub.close()
    assert engine.stop() == 0


def test_repeated_stop_signals_still_end_in_a_clean_exit(engine: EngineProcess):
    """Orchestrators and cluster peers repeat their stop; the exit must still say success."""
    engine.start()
    assert engine.proc is not None
    while engine.proc.poll() is None:  # keep signalling through the drain and the exit
        engine.proc.send_signal(signal.SIGTERM)
        time.sleep(0.02)
    assert engine.wait() == 0, engine.log
    assert "engine stopped" in engine.log


@pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="mosquitto_pub not installed")
def test_mosquitto_pub_reading_appears_within_a_second(
    engine: EngineProcess,
    database_url: str,
    redis_url: str,
    redis_prefix: str,
    mqtt_url: str,
    topic_prefix: str,
):
    engine.start()
    car = f"{topic_prefix.strip('/')}-car-1"
    port = mqtt_url.rsplit(":", 1)[1]
    payload = json.dumps({"ts": now_ms(), "values": {"speed_kmh": 50}})
    started = time.monotonic()
    subprocess.run(
        [
            "mosquitto_pub",
            "-p",
            port,
            "-q",
            "1",
            "-t",
            f"{topic_prefix}devices/{car}/telemetry",
            "-m",
            payload,
        ],
        check=True,
    )
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert wait_until(lambda: count_rows(database_url, car) == 1, timeout_s=5, interval_s=0.02)
    assert wait_until(
        lambda: r.hget(f"{redis_prefix}twin:{car}", "speed_kmh") == "50",
        timeout_s=5,
        interval_s=0.02,
    )
    print(f"row and hash visible {time.monotonic() - started:.3f}s after mosquitto_pub started")
    assert engine.stop() == 0
