"""Latency at fixed offered rates (prints figures): a publisher sends each QoS 1 message at its
planned time, stamped with that time, to one engine with everything on; the figure is the time
from the device timestamp to the PostgreSQL commit (``ingested_at - ts``), and from arrival at
the engine to the commit. The first 5 seconds (10,000 twins created) are left out of the
percentiles. How far Redis is behind the commit comes from the engine's own
``twin_latency_seconds`` histogram (the newest reading's age at each stage, sampled),
interpolated within its buckets. Publisher, broker, PostgreSQL and engine share the machine's
two cores."""

from __future__ import annotations

import urllib.request

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from storage.database import psycopg_url
from storage.embedded import free_port
from tests.bench.test_throughput import bench_env, blast, live_hashes, rss_mib, wait_for_rows
from tests.conftest import EngineProcess, fresh_database

pytestmark = pytest.mark.bench

SECONDS = 20
DEVICES = 10_000

_PERCENTILES = (
    "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM "
    "ingested_at - ts)), percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY "
    "extract(epoch FROM ingested_at - received_at)) FROM telemetry "
    "WHERE ts >= (SELECT min(ts) FROM telemetry) + interval '5 seconds'"
)


def stage_quantiles(port: int, quantiles: tuple[float, ...]) -> dict[str, list[float]]:
    """Per stage of ``twin_latency_seconds``: each quantile, linear within its bucket."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    buckets: dict[str, list[tuple[float, float]]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "twin_latency_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                le = float(sample.labels["le"])
                buckets.setdefault(sample.labels["stage"], []).append((le, sample.value))
    out = {}
    for stage, counts in buckets.items():
        counts.sort()
        total = counts[-1][1]
        values = []
        for q in quantiles:
            want, low, below = q * total, 0.0, 0.0
            for le, cumulative in counts:
                if cumulative >= want:
                    share = (want - below) / max(cumulative - below, 1e-9)
                    values.append(low + share * ((le if le != float("inf") else low) - low))
                    break
                low, below = le, cumulative
        out[stage] = values
    return out


@pytest.mark.parametrize(("rate", "batch"), [(5_000, 1), (10_000, 1), (2_000, 10), (3_000, 10)])
def test_latency_at_a_fixed_offered_rate(
    deep_broker, pg_admin_url, redis_url, redis_prefix, engine_env, rate, batch
):
    port = deep_broker
    prefix = engine_env["TWIN_TOPIC_PREFIX"]
    readings = rate * batch * SECONDS
    with fresh_database(pg_admin_url) as db:
        env = bench_env(engine_env, db, port, TWIN_METRICS_PORT=str(free_port()))
        engine = EngineProcess(env).start()
        published = blast(port, prefix, DEVICES, readings, batch, rate)
        count, _ = wait_for_rows(db, readings)
        with psycopg.connect(psycopg_url(db), autocommit=True) as conn:
            device, arrival = conn.execute(_PERCENTILES).fetchone()
        stages = stage_quantiles(int(env["TWIN_METRICS_PORT"]), (0.5, 0.99))
        rss = rss_mib(engine)
        code = engine.stop()
        hashes = live_hashes(redis_url, redis_prefix)
    print(
        f"\n[bench latency] offered {rate * batch} readings/s ({rate} messages/s, {batch} per "
        f"message) for {SECONDS} s to {DEVICES} devices; the publisher fell at most "
        f"{published['most_behind_plan_s'] * 1000:.0f} ms behind its plan; {count} rows: device "
        f"→ commit p50 {device[0] * 1000:.0f} ms, p99 {device[1] * 1000:.0f} ms; arrival → "
        f"commit p50 {arrival[0] * 1000:.0f} ms, p99 {arrival[1] * 1000:.0f} ms; the engine's "
        f"own histogram (device → stage, p50 / p99): PostgreSQL "
        f"{' / '.join(f'{v * 1000:.0f}' for v in stages['postgres'])} ms, Redis "
        f"{' / '.join(f'{v * 1000:.0f}' for v in stages['redis'])} ms; engine RSS "
        f"{rss:.0f} MiB; {hashes} Redis hashes; exit {code}"
    )
    assert count == readings, "readings lost"
    assert hashes == DEVICES
