"""Lose nothing: every reading the broker acknowledged is stored exactly once, whatever happens.

Each scenario runs private Mosquitto, PostgreSQL and Redis servers, one engine and a publisher
that records every acknowledged reading; it kills, stops and floods them under load, then
demands: 0 acknowledged readings lost, 0 stored twice, every twin's counter equal to its rows
(in Redis and in its final snapshot), no second open alert or episode, and clean exit codes.
`make test` runs each scenario short (300 readings/s for 12 s, 4 s outages); `make chaos`
runs them at full size (2,000 readings/s, 30 s and 90 s outages, a 20,000-message flood).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
import redis

from storage.database import psycopg_url
from tests.chaos.conftest import Size, Stack
from tests.chaos.publisher import ChaosPublisher
from tests.conftest import EngineProcess
from tests.integration.helpers import now_ms, wait_until

pytestmark = pytest.mark.timeout(1800)  # a full-size scenario runs for minutes


class Trial:
    """One engine against the private stack, and the checks every scenario ends with."""

    def __init__(self, stack: Stack, engine_env: dict[str, str], prefix: str, size: Size):
        self.stack, self.prefix, self.size = stack, prefix, size
        self.env = dict(
            engine_env,
            TWIN_DATABASE_URL=stack.postgres.url,
            TWIN_REDIS_URL=stack.redis.url,
            TWIN_MQTT_URL=stack.mosquitto.url,
            TWIN_SNAPSHOT_INTERVAL_S="2",  # catch-up after a kill has real work to do
            TWIN_NOTIFY="off",
        )
        del self.env["TWIN_MQTT_GROUP"]  # one engine alone: a plain subscription
        self.engine = EngineProcess(self.env)
        self.codes: list[int] = []
        self.logs: list[str] = []

    def start(self) -> None:
        self.engine.start(timeout_s=90)

    def kill(self) -> None:
        assert self.engine.proc is not None
        self.engine.proc.kill()
        self.codes.append(self.engine.wait())

    def stop(self) -> None:
        self.codes.append(self.engine.stop(timeout_s=180))
        self.logs += ["---- engine stopped ----", *self.engine.lines]

    def publisher(self) -> ChaosPublisher:
        size = self.size
        url = self.stack.mosquitto.url
        return ChaosPublisher(url, self.prefix, size.devices, size.rate, now_ms() - 60_000)

    def rows(self) -> list[tuple[str, int, int]]:
        try:
            with psycopg.connect(psycopg_url(self.stack.postgres.url), connect_timeout=3) as conn:
                return conn.execute(
                    "SELECT device_id, round(extract(epoch FROM ts) * 1000)::bigint, seq "
                    "FROM telemetry WHERE device_id LIKE %s",
                    (f"{self.prefix.strip('/')}-%",),
                ).fetchall()
        except psycopg.OperationalError:
            return []

    def q(self, sql: str, *args: object) -> list[tuple]:
        with psycopg.connect(psycopg_url(self.stack.postgres.url)) as conn:
            return conn.execute(sql, args).fetchall()

    def evidence(self) -> str:
        """What to read when a scenario fails: dead letters by reason, the engine's warnings."""
        try:
            dead = self.q("SELECT reason, count(*) FROM dead_letters GROUP BY 1")
        except psycopg.Error as exc:
            dead = [("unreadable", str(exc))]
        notable = [line for line in self.logs + self.engine.lines if " INFO " not in line]
        return f"dead letters {dead}\n" + "\n".join(notable[-60:])

    def finish(self, pub: ChaosPublisher, expect_codes: list[int]) -> dict[str, int]:
        """Let everything land, stop cleanly and check the promise; returns figures."""
        pub.join()
        pub.settle()
        acked = pub.result.acked
        missing = wait_until(lambda: not (acked - set(self.rows())), 120, 0.5)
        rows = self.rows()
        stored = set(rows)
        lost = acked - stored
        assert not lost, (f"{len(lost)} acknowledged readings lost, e.g. {sorted(lost)[:5]}",
                          self.evidence())  # fmt: skip
        assert missing
        assert len(rows) == len(stored), "a reading stored twice"
        per_device = Counter(d for d, _, _ in rows)
        live = redis.Redis.from_url(self.stack.redis.url, decode_responses=True)
        prefix = self.env.get("TWIN_REDIS_PREFIX", "")

        def counters() -> dict[str, int]:
            return {d: int(live.hget(f"{prefix}twin:{d}", "readings") or -1) for d in per_device}

        assert wait_until(lambda: counters() == dict(per_device), 30), (
            {d: (c, per_device[d]) for d, c in counters().items() if c != per_device[d]},
            self.evidence(),
        )
        self.stop()
        snapshots = dict(
            self.q(
                "SELECT device_id, (state->>'readings')::bigint FROM twin_snapshots "
                "WHERE device_id = ANY(%s)",
                list(per_device),
            )
        )
        assert snapshots == dict(per_device), "a twin's counter differs from its rows"
        twice = self.q(
            "SELECT device_id, rule_id FROM alerts WHERE status <> 'resolved' "
            "GROUP BY 1, 2 HAVING count(*) > 1 UNION ALL SELECT device_id, metric FROM anomalies "
            "WHERE ended_at IS NULL GROUP BY device_id, detector, metric HAVING count(*) > 1"
        )
        assert twice == []
        assert self.codes == expect_codes, (self.codes, self.evidence())
        figures = {
            "published": pub.result.sent,
            "acknowledged": len(acked),
            "stored": len(stored),
            "lost": len(lost),
            "unmatched": pub.result.unmatched,
        }
        print(f"\n[chaos] {figures}")
        pub.close()
        return figures


@pytest.fixture
def trial(stack: Stack, engine_env: dict[str, str], topic_prefix: str, size: Size) -> Trial:
    return Trial(stack, engine_env, topic_prefix, size)


def test_sigkill_three_times_under_load(trial: Trial):
    trial.start()
    pub = trial.publisher()
    pub.start(trial.size.seconds)
    for _ in range(3):
        time.sleep(trial.size.seconds / 4)
        trial.kill()
        trial.start()
    trial.finish(pub, [-9, -9, -9, 0])
    assert "catching up" in trial.engine.log or trial.size.rate < 100


def test_sigterm_under_load_stops_cleanly_and_restarts(trial: Trial):
    trial.start()
    pub = trial.publisher()
    pub.start(trial.size.seconds)
    time.sleep(trial.size.seconds / 2)
    trial.stop()
    trial.start()
    trial.finish(pub, [0, 0])


@pytest.mark.parametrize("length", [1, 3], ids=["outage", "long-outage"])
def test_postgres_down_under_load(trial: Trial, length: int):
    outage = trial.size.outage_s * length
    trial.start()
    pub = trial.publisher()
    pub.start(max(trial.size.seconds, outage + trial.size.seconds / 2))
    time.sleep(trial.size.seconds / 4)
    trial.stack.postgres.stop()
    time.sleep(outage)
    trial.stack.postgres.start()
    trial.finish(pub, [0])


def test_redis_down_under_load(trial: Trial):
    trial.start()
    pub = trial.publisher()
    pub.start(max(trial.size.seconds, trial.size.outage_s + trial.size.seconds / 2))
    time.sleep(trial.size.seconds / 4)
    trial.stack.redis.stop()
    time.sleep(trial.size.outage_s)
    trial.stack.redis.start()
    trial.finish(pub, [0])


def test_mosquitto_restarted_from_persistence_under_load(trial: Trial):
    trial.start()
    pub = trial.publisher()
    pub.start(trial.size.seconds)
    time.sleep(trial.size.seconds / 2)
    trial.stack.mosquitto.stop()
    time.sleep(1.0)
    trial.stack.mosquitto.start()
    figures = trial.finish(pub, [0])
    assert figures["unmatched"] == 0  # the plain subscription was there the moment it was back


def test_client_id_change_under_load_strands_nothing(trial: Trial):
    """Readings queued for the old client id's session are drained by the new engine."""
    run = trial.prefix.strip("/")
    trial.engine.env = dict(trial.env, TWIN_MQTT_CLIENT_ID=f"{run}-old")
    trial.start()
    pub = trial.publisher()
    pub.start(trial.size.seconds)
    time.sleep(trial.size.seconds / 3)
    trial.stop()  # the old session keeps queuing while no engine runs
    time.sleep(trial.size.seconds / 6)
    trial.engine.env = dict(trial.env, TWIN_MQTT_CLIENT_ID=f"{run}-new")
    trial.start()
    trial.finish(pub, [0, 0])
    assert any(f"MQTT session {run}-old-0" in line and "draining" in line
               for line in trial.engine.lines)  # fmt: skip


def poison_messages(n: int, seed: int = 7) -> list[tuple[str, bytes, str]]:
    """``(topic, payload, reason)`` for every class of bad input, ``n`` in all."""
    rng = random.Random(seed)
    old = now_ms() - 400 * 86_400_000
    classes = [
        ("devices/p1/telemetry", lambda: rng.randbytes(rng.randint(1, 300)), None),
        ("devices/p1/telemetry", lambda: b"[" * 1000 + b"]" * 1000, "too_deep"),
        ("devices/p1/telemetry", lambda: b'{"a":' * 5000 + b"1" + b"}" * 5000, "too_deep"),
        ("devices/p1/telemetry", lambda: b"x" * (1 << 20), "oversize"),
        ("devices/p1/telemetry",
         lambda: json.dumps({f"k{i}": i for i in range(100_000)}).encode(), "oversize"),
        ("devices/p1/telemetry", lambda: b'{"rpm": 1' + b"0" * 400 + b"}", "non_finite"),
        ("devices/p1/telemetry", lambda: b'{"rpm": NaN}', "non_finite"),
        ("devices/p1/telemetry", lambda: b'{"rpm": 1e999}', "non_finite"),
        ("devices/bad id!/telemetry", lambda: b'{"rpm": 1}', "bad_topic"),
        ("devices/p1/attributes", lambda: b'{"model": "X\\u0000"}', "store_rejected"),
        ("devices/p1/events", lambda: b'{"type": "note", "text": "\\u0000"}', "store_rejected"),
        ("devices/p1/telemetry", lambda: b'{"rpm": "\xff"}', "bad_encoding"),
        ("devices/p1/telemetry",
         lambda: json.dumps({"ts": old, "values": {"rpm": 1}}).encode(), "expired"),
    ]  # fmt: skip
    made: dict[int, bytes] = {}  # each payload is built once (the random bytes every time)
    out = []
    for i in range(n):
        k = i % len(classes)
        topic, make, reason = classes[k]
        if k == 0:
            out.append((topic, make(), reason))
            continue
        if k not in made:
            made[k] = make()
        out.append((topic, made[k], reason))
    return out


def test_poison_flood_beside_valid_traffic(trial: Trial):
    trial.start()
    pub = trial.publisher()
    pub.start(trial.size.seconds)
    flood = poison_messages(trial.size.poison)
    pace = trial.size.seconds * 0.8 / len(flood)
    for topic, payload, _ in flood:
        pub.poison(topic.replace("p1", f"{trial.prefix.strip('/')}-p1"), payload)
        time.sleep(pace)
    trial.finish(pub, [0])
    dead = trial.q("SELECT reason, count(*) FROM dead_letters WHERE topic LIKE %s GROUP BY 1",
                   f"{trial.prefix}%")  # fmt: skip
    by_reason = dict(dead)
    assert sum(by_reason.values()) == len(flood), by_reason  # every one, and only once
    expected = Counter(r for _, _, r in flood if r is not None)
    for reason, count in expected.items():
        assert by_reason.get(reason, 0) >= count, (reason, by_reason)
    assert "parse_failed" not in by_reason
    assert "Traceback" not in trial.engine.log


def test_scenario_files_are_private(tmp_path: Path, stack: Stack):
    """The suite's servers are its own: nothing here touches the machine's services."""
    assert stack.mosquitto.port != 1883 and stack.redis.port != 6379
    assert "host=" in stack.postgres.url and str(tmp_path) in stack.postgres.url
