"""The API as ``twin run`` serves it: readings published over MQTT are read back through it, live
and stored, pushed over the stream; its process goes when the engine does, even killed."""

from __future__ import annotations

import json
import signal
import socket
import time

import httpx
import psycopg

from storage import api_keys
from storage.database import psycopg_url
from tests.conftest import EngineProcess
from tests.integration.api_fleet import free_port
from tests.integration.helpers import Publisher, now_ms, wait_until


def reading(ts: int, seq: int, speed: float) -> dict:
    return {"ts": ts, "seq": seq, "values": {"speed_kmh": speed, "odometer_km": 500.0 + seq}}


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_engine_serves_what_it_ingests(
    engine: EngineProcess, database_url: str, mqtt_url: str, topic_prefix: str
):
    port = free_port()
    engine.env.update(TWIN_API="on", TWIN_API_HOST="127.0.0.1", TWIN_API_PORT=str(port))
    engine.start()
    engine.wait_for("API listening", 30)
    with psycopg.connect(psycopg_url(database_url)) as conn:
        _, key = api_keys.create(conn, "engine test", "viewer")
    car = f"{topic_prefix.strip('/')}-car"
    pub = Publisher(mqtt_url, topic_prefix)
    pub.send(car, "attributes", {"profile": "passenger_car", "group": "west"})
    t = now_ms() - 10_000
    for seq in range(5):
        pub.send(car, "telemetry", reading(t + seq * 1000, seq, 40.0 + seq))
    pub.flush()
    http = httpx.Client(
        base_url=f"http://127.0.0.1:{port}/api/v1",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )

    def twin() -> dict:
        got = http.get(f"/twins/{car}")
        return got.json() if got.status_code == 200 else {}

    live = wait_until(lambda: twin().get("readings") == 5 and twin())
    assert live and live["source"] == "live" and live["values"]["speed_kmh"] == 44.0
    assert http.get(f"/devices/{car}").json()["group"] == "west"
    rows = http.get(f"/devices/{car}/telemetry", params={"step": "raw"}).json()
    assert [p["values"]["speed_kmh"] for p in rows["points"]] == [40.0, 41.0, 42.0, 43.0, 44.0]

    with http.stream("GET", f"/stream?devices={car}&rate=10") as stream:
        lines = stream.iter_lines()
        first = json.loads(next(ln for ln in lines if ln.startswith("data: "))[6:])
        assert first["speed_kmh"] == 44.0
        pub.send(car, "telemetry", reading(t + 5000, 5, 77.0))
        sent = time.monotonic()
        pushed = json.loads(next(ln for ln in lines if ln.startswith("data: "))[6:])
        took = time.monotonic() - sent
    assert pushed["speed_kmh"] == 77.0 and pushed["readings"] == 6
    assert took < 10, f"the update took {took:.1f} s"
    pub.close()
    http.close()

    engine.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    engine.wait(10)
    assert wait_until(lambda: not port_taken(port), timeout_s=10), "the API outlived its engine"


def test_an_api_process_that_cannot_listen_says_so_and_ends(database_url: str, caplog):
    from api.config import ApiConfig
    from api.server import ApiProcess

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        api = ApiProcess(ApiConfig(database_url), "127.0.0.1", port).start(timeout_s=30)
        assert not api.started and time.monotonic() - started < 30
        assert "API did not start" in caplog.text
        api.stop()
