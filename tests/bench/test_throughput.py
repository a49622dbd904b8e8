"""End-to-end throughput of one engine process (prints figures).

A private Mosquitto (queue limits raised: the default drops bursts) on a free port, a fresh
database, one `twin run` process, and a separate publisher blasting pre-encoded QoS 1 messages
as fast as paho can. The figure is readings committed to PostgreSQL per second, from the first
publish to the last row, with the Redis hashes checked afterwards.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis

from storage.database import psycopg_url
from storage.embedded import free_port
from tests.conftest import ROOT, EngineProcess, fresh_database

pytestmark = [
    pytest.mark.bench,
    pytest.mark.skipif(shutil.which("mosquitto") is None, reason="needs the mosquitto binary"),
]


@pytest.fixture
def bench_broker(tmp_path: Path):
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 2000000\nmax_inflight_messages 0\n"
        "max_queued_bytes 0\n"
    )
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(0.5)
    yield port
    proc.terminate()
    proc.wait(5)


@pytest.mark.parametrize(
    ("devices", "readings", "batch"), [(10_000, 100_000, 1), (10_000, 500_000, 10)]
)
def test_engine_throughput(
    bench_broker, pg_admin_url, redis_url, redis_prefix, engine_env, devices, readings, batch
):
    port = bench_broker
    prefix = engine_env["TWIN_TOPIC_PREFIX"]
    with fresh_database(pg_admin_url) as db:
        env = dict(
            engine_env,
            TWIN_DATABASE_URL=db,
            TWIN_MQTT_URL=f"mqtt://127.0.0.1:{port}",
            TWIN_SNAPSHOT_INTERVAL_S="30",
        )
        engine = EngineProcess(env).start()
        started = time.monotonic()
        blast = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.bench.blast",
                str(port),
                prefix,
                str(devices),
                str(readings),
                str(batch),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        published = json.loads(blast.stdout)
        count, last_change, last = 0, time.monotonic(), -1
        with psycopg.connect(psycopg_url(db), autocommit=True) as conn:
            while count < readings and time.monotonic() - last_change < 20:
                count = conn.execute("SELECT count(*) FROM telemetry").fetchone()[0]
                if count != last:
                    last, last_change = count, time.monotonic()
                time.sleep(0.25)
            done = last_change - started
            lat = conn.execute(
                "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY "
                "extract(epoch from ingested_at - received_at)) FROM telemetry"
            ).fetchone()[0]
        rss = Path(f"/proc/{engine.proc.pid}/status").read_text() if engine.proc else ""
        rss_kib = next(
            (int(line.split()[1]) for line in rss.splitlines() if line.startswith("VmRSS")), 0
        )
        code = engine.stop()
        hashes = sum(
            1
            for _ in redis.Redis.from_url(redis_url).scan_iter(
                match=f"{redis_prefix}twin:bench-*", count=5000
            )
        )
    print(
        f"\n[bench] {devices} devices, {readings} readings, {batch} per message: publisher "
        f"{published['readings'] / published['seconds']:.0f} readings/s; engine committed "
        f"{count} rows in {done:.1f}s = {count / done:.0f} readings/s; "
        f"arrival→commit p50 {lat[0] * 1000:.0f} ms p99 {lat[1] * 1000:.0f} ms; "
        f"engine RSS {rss_kib / 1024:.0f} MiB; {hashes} Redis hashes; exit {code}"
    )
    assert count == readings, "readings lost"
    assert hashes == devices
