"""Storage against real PostgreSQL and Redis: idempotent writes, partitions, live state."""

from __future__ import annotations

import json
import time
import uuid
from datetime import date

import msgspec
import psycopg
import pytest
import redis
from psycopg import pq

from storage import partitions
from storage.database import (
    KeptConnection,
    connect,
    current_revision,
    migrate,
    psycopg_url,
)
from storage.live_store import LiveStore
from storage.pg_writer import PgWriter
from twin.processor import TwinProcessor
from twin.records import DeadLetter, DeviceInbox, Reading, Reason, TwinOutput

T0 = 1_763_683_200_000  # 2025-11-21T00:00:00Z


def output(device: str, *readings: Reading, dead: list[DeadLetter] | None = None) -> TwinOutput:
    return TwinOutput(
        device_id=device, readings=list(readings), dead_letters=dead or [], events=[], live=None
    )


def test_migrating_twice_is_a_no_op(database_url: str):
    assert migrate(database_url) == current_revision(database_url) == "0013_anomaly_explanation"


def test_redelivered_readings_are_stored_once_across_batches(database_url: str):
    dev = f"w-{uuid.uuid4().hex[:8]}"
    writer = PgWriter(database_url)
    a = Reading(dev, T0, {"rpm": 1.0}, T0, seq=1)
    b = Reading(dev, T0 + 1, {"rpm": 2.0}, T0)
    first = writer.write([output(dev, a, b, a)])  # a duplicate inside one batch too
    second = writer.write([output(dev, a, b)])
    assert (first.readings, first.inserted) == (3, 2)
    assert (second.inserted, second.duplicates) == (0, 2)
    with psycopg.connect(psycopg_url(database_url)) as conn:
        rows = conn.execute(
            "SELECT seq, received_at FROM telemetry WHERE device_id = %s ORDER BY ts", (dev,)
        ).fetchall()
    assert [r[0] for r in rows] == [1, -1]
    assert rows[0][1].tzinfo is not None
    writer.close()


def test_dead_letters_keep_raw_bytes_even_with_nul(database_url: str):
    dev = f"w-{uuid.uuid4().hex[:8]}"
    dl = DeadLetter(
        received_ms=T0,
        topic="devices/x\x00/telemetry",
        reason=Reason.BAD_TOPIC,
        detail="nul in topic",
        payload=b"\x00\xff",
        device_id=dev,
    )
    PgWriter(database_url).write([], [dl])
    with psycopg.connect(psycopg_url(database_url)) as conn:
        row = conn.execute(
            "SELECT payload, reason FROM dead_letters WHERE device_id = %s", (dev,)
        ).fetchone()
    assert row is not None and bytes(row[0]) == b"\x00\xff" and row[1] == "bad_topic"


def test_partitions_are_created_ahead_and_dropped_after_retention(pg_admin_url: str):
    from tests.conftest import fresh_database

    with fresh_database(pg_admin_url) as url:
        migrate(url)
        with connect(url) as conn:
            created = partitions.ensure_window(conn, date(2026, 1, 31), ahead=3, behind=1)
            conn.commit()
            assert created == [
                date(2026, 1, 30),
                date(2026, 1, 31),
                date(2026, 2, 1),
                date(2026, 2, 2),
                date(2026, 2, 3),
            ]
            assert partitions.ensure_window(conn, date(2026, 1, 31), ahead=3) == []
            dropped = partitions.drop_expired(conn, date(2026, 3, 2), retention_days=30)
            conn.commit()
            assert dropped == [date(2026, 1, 30)]  # 31 January is still inside 30 days
            assert min(partitions.existing_days(conn)) == date(2026, 1, 31)
        # a write into a day that has no partition creates it
        PgWriter(url).write([output("d", Reading("d", T0, {"x": 1.0}, T0))])
        with connect(url) as conn:
            assert date(2025, 11, 21) in partitions.existing_days(conn)


def test_live_store_coalesces_per_device_with_ttl_and_geo(redis_url: str, redis_prefix: str):
    store = LiveStore(redis_url, prefix=redis_prefix, ttl_s=120)
    processor = TwinProcessor()
    state = None
    outs = []
    for i in range(5):
        r = Reading("car", T0 + i, {"speed_kmh": float(i), "lat": 10.0, "lon": 20.0 + i}, T0 + i)
        state, out = processor.process(state, "car", DeviceInbox("car", [r], 1), T0 + i)
        outs.append(out)
    result = store.write(outs)
    assert result.written == 1  # five outputs, one hash write
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    key = f"{redis_prefix}twin:car"
    assert client.hget(key, "speed_kmh") == "4.0" and client.hget(key, "readings") == "5"
    assert 0 < client.ttl(key) <= 120
    lon, lat = client.geopos(f"{redis_prefix}twin:geo", "car")[0]
    assert abs(lon - 24.0) < 1e-4 and abs(lat - 10.0) < 1e-4


def test_live_hashes_hold_the_text_the_redis_client_would_write(redis_url: str, redis_prefix: str):
    """The fields travel packed (one argument per device); what lands is what HSET of each
    field would have stored."""
    view = {"a": 0.1 + 0.2, "b": 800.0, "c": 2**53, "d": -0.0, "e": 1e-05, "f": 1e16,
            "status": "online", "profile": "x,y \"z\" ünï", "g": 7}  # fmt: skip
    out = TwinOutput(device_id="packed", readings=[], dead_letters=[], events=[], live=view)
    LiveStore(redis_url, prefix=redis_prefix).write([out])
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stored = client.hgetall(f"{redis_prefix}twin:packed")
    direct = f"{redis_prefix}direct"
    client.hset(direct, mapping=view)
    assert stored == client.hgetall(direct) and stored["a"] == "0.30000000000000004"
    client.delete(direct)


def test_live_store_holds_latest_state_while_redis_is_away():
    store = LiveStore("redis://127.0.0.1:1/0", backoff_initial_s=0.0)
    processor = TwinProcessor()
    state = None
    for i in range(3):
        r = Reading("m", T0 + i, {"rpm": float(i)}, T0 + i)
        state, out = processor.process(state, "m", DeviceInbox("m", [r], 1), T0 + i)
        result = store.write([out])
        assert result.failed and result.pending == 1  # newest state only, never an exception
    assert store.failures == 3


def test_sink_isolates_a_refused_device_and_keeps_the_rest(database_url: str):
    """jsonb refuses \\u0000: that device's event and attributes become dead letters on the
    topics they came from (prefix included), its neighbour lands."""
    from flows.connectors.sinks import PgSink
    from twin.records import DeviceEvent, DeviceRecord

    good, bad = f"ok-{uuid.uuid4().hex[:8]}", f"nul-{uuid.uuid4().hex[:8]}"
    event = DeviceEvent(
        device_id=bad, ts_ms=T0, type="note", body={"text": "a\u0000b"}, received_ms=T0
    )
    registry = DeviceRecord(bad, "vehicle", "passenger_car", {"model": "X\u0000"}, T0, T0)
    refused = TwinOutput(
        device_id=bad, readings=[], dead_letters=[], events=[event], live=None, registry=registry
    )
    fine = output(good, Reading(good, T0, {"rpm": 1.0}, T0))
    part = PgSink(database_url, topic_prefix="site-a/").build("postgres", 1, 1)
    part.write_batch([refused, fine])
    part.close()
    with psycopg.connect(psycopg_url(database_url)) as conn:
        assert (
            conn.execute("SELECT count(*) FROM telemetry WHERE device_id = %s", (good,)).fetchone()[
                0
            ]
            == 1
        )
        rows = conn.execute(
            "SELECT reason, topic, payload FROM dead_letters WHERE device_id = %s ORDER BY topic",
            (bad,),
        ).fetchall()
    assert [r[:2] for r in rows] == [
        ("store_rejected", f"site-a/devices/{bad}/attributes"),
        ("store_rejected", f"site-a/devices/{bad}/events"),
    ]
    assert json.loads(rows[0][2])["model"] == "X\u0000"


def test_kept_connection_is_reused_ends_rounds_idle_and_reopens_after_a_failure(
    database_url: str,
):
    kept = KeptConnection(database_url)
    with kept.session() as conn:
        first_pid = conn.info.backend_pid
        conn.execute("SELECT 1")  # a round that only reads
    with kept.session() as conn:
        assert conn.info.backend_pid == first_pid  # the same connection, not a new one
        assert conn.info.transaction_status == pq.TransactionStatus.IDLE
    with psycopg.connect(psycopg_url(database_url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (first_pid,))
    with pytest.raises(psycopg.OperationalError), kept.session() as conn:
        conn.execute("SELECT 1")  # the server dropped it: this round fails
    with kept.session() as conn:  # and the next one has a new connection
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.info.backend_pid != first_pid
    kept.close()


def test_one_open_alert_per_rule_and_one_open_episode_per_metric(database_url: str):
    """A restarted engine that forgot an open alert or episode cannot open a second one: the
    writer skips it and the database itself refuses it."""
    from twin.alerts.records import AlertTransition
    from twin.anomaly.records import Anomaly

    dev = f"uq-{uuid.uuid4().hex[:8]}"

    def opened(first_ms: int) -> AlertTransition:
        return AlertTransition(
            alert_id=f"{dev}:r:{first_ms}", device_id=dev, rule_id="r", rule_type="threshold",
            transition="opened", severity="major", peak_severity="major", occurrences=1,
            first_seen_ms=first_ms, last_seen_ms=first_ms, at_ms=first_ms,
        )  # fmt: skip

    def episode(started_ms: int) -> Anomaly:
        return Anomaly(device_id=dev, detector="level", kind="high", metric="rpm",
                       severity="warning", score=0.9, started_ms=started_ms)  # fmt: skip

    writer = PgWriter(database_url)
    for first in (T0, T0 + 60_000):  # the second comes from a twin that forgot the first
        out = TwinOutput(device_id=dev, readings=[], dead_letters=[], events=[], live=None,
                         alerts=[opened(first)], anomalies=[episode(first)])  # fmt: skip
        writer.write([out])
    writer.close()
    with psycopg.connect(psycopg_url(database_url)) as conn:
        alerts = conn.execute("SELECT id FROM alerts WHERE device_id = %s", (dev,)).fetchall()
        timeline = conn.execute(
            "SELECT count(*) FROM alert_timeline WHERE alert_id LIKE %s", (f"{dev}:%",)
        ).fetchone()
        episodes = conn.execute(
            "SELECT started_at FROM anomalies WHERE device_id = %s", (dev,)
        ).fetchall()
        assert alerts == [(f"{dev}:r:{T0}",)] and timeline == (1,) and len(episodes) == 1
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO alerts (id, device_id, rule_id, rule_type, status, severity, "
                "peak_severity, first_seen, last_seen) VALUES ('x', %s, 'r', 'threshold', 'new', "
                "'major', 'major', now(), now())",
                (dev,),
            )
        conn.rollback()
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO anomalies (device_id, detector, metric, started_at, kind, severity, "
                "score, model_version) VALUES (%s, 'level', 'rpm', now(), 'high', 'warning', 1, "
                "'x')",
                (dev,),
            )


def test_a_relation_anomaly_keeps_each_metrics_expected_and_observed(database_url: str):
    from storage import device_reads
    from twin.anomaly.records import Anomaly, Explained

    dev = f"rel-{uuid.uuid4().hex[:8]}"
    why = (Explained("flow", 212.5, 201.0), Explained("pressure", 50.4, 53.1))
    opened = Anomaly(device_id=dev, detector="relation", kind="relation", metric="flow+pressure",
                     severity="warning", score=0.7, started_ms=T0, expected=212.5, observed=201.0,
                     explanation=why)  # fmt: skip
    plain = Anomaly(device_id=dev, detector="level", kind="high", metric="flow",
                    severity="warning", score=0.6, started_ms=T0)  # fmt: skip
    closed = msgspec.structs.replace(opened, ended_ms=T0 + 5_000, explanation=())
    writer = PgWriter(database_url)
    for batch in ([opened, plain], [closed]):  # a close that carries none keeps what was there
        writer.write([TwinOutput(device_id=dev, readings=[], dead_letters=[], events=[],
                                 live=None, anomalies=batch)])  # fmt: skip
    writer.close()
    with psycopg.connect(psycopg_url(database_url)) as conn:
        rows = {r.detector: r for r in device_reads.anomalies(conn, device=dev)}
    assert rows["relation"].explanation == [
        {"metric": "flow", "expected": 212.5, "observed": 201.0},
        {"metric": "pressure", "expected": 50.4, "observed": 53.1},
    ]
    assert rows["relation"].ended_at is not None and rows["level"].explanation is None


def test_snapshots_load_in_parts_as_they_load_whole(database_url: str):
    from storage.catalog import load_snapshots, load_snapshots_in_parts

    run = uuid.uuid4().hex[:8]
    with psycopg.connect(psycopg_url(database_url)) as conn:
        conn.execute(
            "INSERT INTO twin_snapshots (device_id, taken_at, last_seen, state_version, state, "
            "txn_at) SELECT %s || g, now(), now(), 1, jsonb_build_object('n', g, 'id', %s || g), "
            "now() FROM generate_series(1, 500) g",
            (f"snap-{run}-", f"snap-{run}-"),
        )
        conn.commit()
        whole = load_snapshots(conn)
        parts = [load_snapshots(conn, k, 3) for k in range(3)]
    assert sum(len(p) for p in parts) == len(whole) and all(parts)  # each twin in one
    assert load_snapshots_in_parts(database_url, 2) == whole
    assert load_snapshots_in_parts(database_url, 3) == whole
    mine = {d: json.loads(v) for d, v in whole.items() if d.startswith(f"snap-{run}-")}
    assert len(mine) == 500 and mine[f"snap-{run}-7"] == {"n": 7, "id": f"snap-{run}-7"}
    with pytest.raises(psycopg.OperationalError):  # on the caller's thread, not lost in one
        load_snapshots_in_parts(database_url.rsplit("/", 1)[0] + "/no_such_database_here")


def test_a_defect_in_the_postgres_writer_stops_the_flow_visibly(database_url: str):
    """The sink commits on its own thread; a bug there must not leave the flow waiting for a
    writer that is gone."""
    from flows.connectors.sinks import PgSink

    part = PgSink(database_url).build("postgres", 0, 1)

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("a defect")

    part._writer.write = broken  # type: ignore[method-assign]
    part.write_batch([output("defect-1", Reading("defect-1", T0, {"rpm": 1.0}, T0))])
    with pytest.raises(RuntimeError, match="writer failed") as raised:
        for _ in range(50):  # the writer fails on its thread; the next batch says so
            part.write_batch([output("defect-1", Reading("defect-1", T0 + 1, {"rpm": 1.0}, T0))])
            time.sleep(0.1)
    assert isinstance(raised.value.__cause__, ValueError)
    part.close()
