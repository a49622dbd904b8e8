"""End-to-end throughput of one engine process (prints figures).

A private Mosquitto (queue limits raised: the default drops bursts) on a free port, a fresh
database and one `twin run` process.

* live: a separate publisher blasts pre-encoded QoS 1 messages as fast as paho can while the
  engine runs; the figure is readings committed to PostgreSQL per second, from the first publish
  to the last row. Publisher, broker and engine share the machine's two cores.
* backlog: the messages wait at the broker in three persistent sessions: a bare paho
  subscriber that does nothing, the engine's MQTT source alone (receive, decode, acknowledge,
  no dataflow) and the engine; each then drains its backlog alone. The engine's figure is rows
  over the span of their commit times.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis

from storage.database import psycopg_url
from tests.conftest import ROOT, EngineProcess, fresh_database

pytestmark = [
    pytest.mark.bench,
    pytest.mark.skipif(shutil.which("mosquitto") is None, reason="needs the mosquitto binary"),
]


def blast(port: int, prefix: str, devices: int, readings: int, batch: int, rate: int = 0) -> dict:
    """Publish; ``rate``: messages per second, each stamped with its planned time (0: flat out)."""
    args = [str(port), prefix, str(devices), str(readings), str(batch)] + (
        [str(rate)] if rate else []
    )
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.blast", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def bare(port: int, topic: str, mode: str, wanted: int = 0) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.bare", str(port), topic, "bench-bare", mode]
        + ([str(wanted)] if wanted else []),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout) if mode == "drain" else {}


def bench_env(engine_env: dict, db: str, port: int, **extra: str) -> dict:
    """The engine's environment for a benchmark: its own database and the private broker
    (``BENCH_BATCH_SIZE`` in the environment sets the engine's source batch size)."""
    if "BENCH_BATCH_SIZE" in os.environ:
        extra = {"TWIN_BATCH_SIZE": os.environ["BENCH_BATCH_SIZE"], **extra}
    return dict(
        engine_env,
        TWIN_DATABASE_URL=db,
        TWIN_MQTT_URL=f"mqtt://127.0.0.1:{port}",
        TWIN_SNAPSHOT_INTERVAL_S="30",
        **extra,
    )


def source_only(port: int, prefix: str, mode: str, wanted: int = 0) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.source_only", str(port), prefix, "bench-source", mode]
        + ([str(wanted)] if wanted else []),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout) if mode == "drain" else {}


def wait_for_rows(db: str, wanted: int, quiet_s: float = 20) -> tuple[int, float]:
    count, last_change, last = 0, time.monotonic(), -1
    with psycopg.connect(psycopg_url(db), autocommit=True) as conn:
        while count < wanted and time.monotonic() - last_change < quiet_s:
            count = conn.execute("SELECT count(*) FROM telemetry").fetchone()[0]
            if count != last:
                last, last_change = count, time.monotonic()
            time.sleep(0.25)
    return count, last_change


def rss_mib(engine: EngineProcess) -> float:
    status = Path(f"/proc/{engine.proc.pid}/status").read_text() if engine.proc else ""
    kib = next((int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmRSS:"), 0)
    return kib / 1024


def live_hashes(redis_url: str, redis_prefix: str) -> int:
    client = redis.Redis.from_url(redis_url)
    return sum(1 for _ in client.scan_iter(match=f"{redis_prefix}twin:bench-*", count=5000))


@pytest.mark.parametrize(
    ("devices", "readings", "batch"), [(10_000, 200_000, 1), (10_000, 500_000, 10)]
)
def test_engine_throughput(
    deep_broker, pg_admin_url, redis_url, redis_prefix, engine_env, devices, readings, batch
):
    port = deep_broker
    prefix = engine_env["TWIN_TOPIC_PREFIX"]
    with fresh_database(pg_admin_url) as db:
        # BENCH_RECOMMEND=off measures the engine without its recommender thread
        env = bench_env(
            engine_env, db, port, TWIN_RECOMMEND=os.environ.get("BENCH_RECOMMEND", "on")
        )
        engine = EngineProcess(env).start()
        started = time.monotonic()
        published = blast(port, prefix, devices, readings, batch)
        count, last_change = wait_for_rows(db, readings)
        done = last_change - started
        with psycopg.connect(psycopg_url(db), autocommit=True) as conn:
            lat = conn.execute(
                "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY "
                "extract(epoch from ingested_at - received_at)) FROM telemetry"
            ).fetchone()[0]
        rss = rss_mib(engine)
        code = engine.stop()
        hashes = live_hashes(redis_url, redis_prefix)
    print(
        f"\n[bench live] {devices} devices, {readings} readings, {batch} per message: publisher "
        f"{published['readings'] / published['seconds']:.0f} readings/s; engine committed "
        f"{count} rows in {done:.1f}s = {count / done:.0f} readings/s; "
        f"arrival→commit p50 {lat[0] * 1000:.0f} ms p99 {lat[1] * 1000:.0f} ms; "
        f"engine RSS {rss:.0f} MiB; {hashes} Redis hashes; exit {code}"
    )
    assert count == readings, "readings lost"
    assert hashes == devices


@pytest.mark.parametrize("detectors", ["on", "scalar", "off"])
@pytest.mark.parametrize(
    ("devices", "readings", "batch"), [(10_000, 200_000, 1), (10_000, 500_000, 10)]
)
def test_engine_drains_backlog_near_the_raw_ceiling(
    deep_broker,
    pg_admin_url,
    redis_url,
    redis_prefix,
    engine_env,
    devices,
    readings,
    batch,
    detectors,
):
    port = deep_broker
    prefix = engine_env["TWIN_TOPIC_PREFIX"]
    with fresh_database(pg_admin_url) as db:
        env = bench_env(
            engine_env,
            db,
            port,
            TWIN_DETECTORS=detectors,
            TWIN_DETECTOR_WARMUP="5",  # 20 readings per device: let the detectors judge most
        )
        assert EngineProcess(env).start().stop() == 0  # leaves its session at the broker
        bare(port, f"{prefix}devices/#", "register")
        source_only(port, prefix, "register")
        blast(port, prefix, devices, readings, batch)
        ceiling = bare(port, f"{prefix}devices/#", "drain", readings // batch)
        ours = source_only(port, prefix, "drain", readings // batch)
        engine = EngineProcess(env).start()
        count, _ = wait_for_rows(db, readings)
        with psycopg.connect(psycopg_url(db), autocommit=True) as conn:
            span = conn.execute(
                "SELECT extract(epoch from max(ingested_at) - min(ingested_at)) FROM telemetry"
            ).fetchone()[0]
        rss = rss_mib(engine)
        code = engine.stop()
        hashes = live_hashes(redis_url, redis_prefix)
        if count != readings:
            print("\n".join(engine.lines[-60:]))
    raw = ceiling["messages"] * batch / ceiling["seconds"]
    own = ours["messages"] * batch / ours["seconds"]
    rate = count / float(span)
    print(
        f"\n[bench backlog] detectors {detectors}: {devices} devices, {readings} readings, "
        f"{batch} per message: bare paho subscriber {raw:.0f} msg/s; the engine's source alone "
        f"(receive, decode, acknowledge) {own:.0f} msg/s = {own / raw:.1f}x paho; engine "
        f"committed {count} rows at {rate:.0f} readings/s = {rate / raw:.2f}x paho; engine RSS "
        f"{rss:.0f} MiB; {hashes} Redis hashes; exit {code}"
    )
    assert ceiling["messages"] == readings // batch
    assert ours["messages"] == readings // batch
    assert count == readings, "readings lost"
    assert hashes == devices
