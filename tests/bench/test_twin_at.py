"""What ``GET /twins/{id}?at=`` costs (prints figures): the nearest history snapshot before
the time, plus the stored readings after it replayed.

Twenty cars sent a 7-metric reading every second for an hour, written by the twin step and the
real writers with the default history interval (15 min), so a replay covers up to about 900
readings. The API (on a thread, nothing else running) is asked for random devices at random
times of that hour, one request after another."""

from __future__ import annotations

import random
import time

import httpx
import psycopg
import pytest

from api.config import ApiConfig
from api.server import ApiThread
from storage import api_keys
from storage.database import migrate, psycopg_url
from storage.pg_writer import PgWriter
from tests.conftest import fresh_database
from twin.clock import iso_ms
from twin.processor import TwinProcessor
from twin.profiles import ProfileBook
from twin.records import Attributes, DeviceInbox, Reading

pytestmark = pytest.mark.bench

T0 = 1_763_632_800_000  # 2025-11-20T10:00:00Z
CARS = 20
SECONDS = 3600
REQUESTS = 300


def _write(url: str) -> None:
    processor = TwinProcessor(ProfileBook())
    writer = PgWriter(url)
    states: dict[str, object] = {}
    for minute in range(SECONDS // 60):
        outputs = []
        for car in range(CARS):
            device = f"car-{car:02d}"
            items: list = []
            if minute == 0:
                items.append(Attributes(device, {"profile": "passenger_car"}, T0))
            for s in range(minute * 60, minute * 60 + 60):
                ts = T0 + s * 1000
                values = {"speed_kmh": 40 + s % 50, "rpm": 1800.0 + s % 400, "coolant_temp_c": 90.0,
                          "fuel_level_pct": 80 - s / 360, "battery_v": 13.8,
                          "odometer_km": 1000 + s / 80, "lat": 52.5 + s / 1e5}  # fmt: skip
                items.append(Reading(device, ts, values, ts, seq=s))
            state, out = processor.process(
                states.get(device), device, DeviceInbox(device, items, len(items)),  # type: ignore[arg-type]
                T0 + minute * 60_000 + 59_000,
            )  # fmt: skip
            states[device] = state
            outputs.append(out)
        writer.write(outputs)
    writer.close()


def test_twin_at_a_past_time(pg_admin_url: str, redis_url: str):
    with fresh_database(pg_admin_url) as url:
        migrate(url)
        started = time.perf_counter()
        _write(url)
        loaded = time.perf_counter() - started
        with psycopg.connect(psycopg_url(url)) as conn:
            _, key = api_keys.create(conn, "bench", "viewer")
            history = conn.execute("SELECT count(*) FROM twin_history").fetchone()[0]
        server = ApiThread(ApiConfig(url, redis_url, "bench-at:"), "127.0.0.1", 0).start()
        rng = random.Random(1)
        took, replayed = [], []
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}",
                          headers={"Authorization": f"Bearer {key}"}) as http:  # fmt: skip
            for k in range(REQUESTS + 20):
                device = f"car-{rng.randrange(CARS):02d}"
                at = iso_ms(T0 + rng.randrange(60_000, SECONDS * 1000))
                sent = time.perf_counter()
                got = http.get(f"/api/v1/twins/{device}", params={"at": at})
                if k >= 20:  # the first ones warm the pool and the caches
                    took.append(time.perf_counter() - sent)
                    replayed.append(got.json()["resolution"]["replayed_readings"])
                assert got.status_code == 200, got.text
        server.stop()
    took.sort()
    print(
        f"\n[bench twin at] {CARS} cars x {SECONDS} readings (written in {loaded:.0f} s, "
        f"{history} history rows): {REQUESTS} requests, readings replayed mean "
        f"{sum(replayed) / len(replayed):.0f}, max {max(replayed)}; answer p50 "
        f"{took[len(took) // 2] * 1000:.1f} ms, p99 {took[int(0.99 * len(took))] * 1000:.1f} ms, "
        f"max {took[-1] * 1000:.1f} ms"
    )
