"""Ingest while a webhook receiver hangs: the engine's rate with and without it (prints figures).

A private Mosquitto, a fresh database and one ``twin run``. Twenty pumps overheat first, so
twenty alerts wait in the outbox for a route whose receiver accepts connections and never
answers (each attempt costs the dispatcher its 5 s timeout, then a retry). Then a burst of
single-reading messages is published and the engine's committed readings per second are
measured, as in ``test_throughput``. The same run without any route is the baseline.
"""

from __future__ import annotations

import json
import shutil
import time

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from storage.database import migrate, psycopg_url
from tests.bench.test_throughput import blast, wait_for_rows
from tests.conftest import EngineProcess, fresh_database
from tests.integration.helpers import Receiver, now_ms

pytestmark = [
    pytest.mark.bench,
    pytest.mark.skipif(shutil.which("mosquitto") is None, reason="needs the mosquitto binary"),
]

HOT_PUMPS, READINGS = 20, 100_000


def overheat(port: int, prefix: str) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix.strip('/')}-hot")
    client.connect("127.0.0.1", port)
    client.loop_start()
    t0 = now_ms() - 120_000
    last = None
    for n in range(HOT_PUMPS):
        device = f"hot-{n}"
        attributes = {"kind": "machine", "profile": "pump"}
        client.publish(f"{prefix}devices/{device}/attributes", json.dumps(attributes), qos=1)
        for i in range(60):
            body = {"ts": t0 + i * 1000, "seq": i, "values": {"temperature_c": 92.0}}
            last = client.publish(f"{prefix}devices/{device}/telemetry", json.dumps(body), qos=1)
    if last is not None:
        last.wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


@pytest.mark.parametrize("receiver", ["hanging", "none"])
def test_ingest_rate_while_the_webhook_receiver_hangs(
    deep_broker: int, pg_admin_url: str, engine_env: dict[str, str], receiver: str
):
    port = deep_broker
    prefix = engine_env["TWIN_TOPIC_PREFIX"]
    hanging = Receiver(hang_s=600)
    with fresh_database(pg_admin_url) as db:
        migrate(db)
        if receiver == "hanging":
            with psycopg.connect(psycopg_url(db), autocommit=True) as conn:
                conn.execute(
                    "INSERT INTO notification_routes (id, channel, target, min_severity) "
                    "VALUES ('hang', 'webhook', %s, 'info')",
                    (hanging.url,),
                )
        env = dict(
            engine_env,
            TWIN_DATABASE_URL=db,
            TWIN_MQTT_URL=f"mqtt://127.0.0.1:{port}",
            TWIN_SNAPSHOT_INTERVAL_S="30",
        )
        engine = EngineProcess(env).start()
        overheat(port, prefix)
        wanted = HOT_PUMPS * 60
        wait_for_rows(db, wanted, quiet_s=5)
        with psycopg.connect(psycopg_url(db), autocommit=True) as conn:
            alerts = conn.execute("SELECT count(*) FROM alerts").fetchone()[0]  # type: ignore[index]
        started = time.monotonic()
        blast(port, prefix, 10_000, READINGS, 1)
        count, last_change = wait_for_rows(db, wanted + READINGS)
        seconds = last_change - started
        with psycopg.connect(psycopg_url(db), autocommit=True) as conn:
            waiting = conn.execute(
                "SELECT count(*) FROM notification_outbox WHERE status = 'pending'"
            ).fetchone()[0]  # type: ignore[index]
        code = engine.stop()
    hanging.close()
    print(
        f"\n[bench notify] receiver {receiver}: {alerts} alerts open, "
        f"{len(hanging.requests)} webhook requests hanging, {waiting} notifications waiting; "
        f"engine committed {count - wanted} readings in {seconds:.1f}s = "
        f"{(count - wanted) / seconds:.0f} readings/s; exit {code}"
    )
    assert count == wanted + READINGS, "readings lost"
    assert alerts >= HOT_PUMPS
    if receiver == "hanging":
        assert hanging.requests and waiting > 0
