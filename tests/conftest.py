"""Fixtures: real servers (the machine's when reachable, embedded otherwise), isolated per run."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import redis

from flows.runtime import collector
from storage.database import migrate
from storage.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bench", action="store_true", help="run the benchmarks in tests/bench")
    parser.addoption(
        "--chaos-full",
        action="store_true",
        help="run the chaos scenarios at full size (2,000 readings/s, 30 s and 90 s outages)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--bench"):
        return
    skip = pytest.mark.skip(reason="benchmark: run with `make bench`")
    for item in items:
        if "bench" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def deep_broker(tmp_path: Path) -> Iterator[int]:
    """A private Mosquitto sized as the README advises for production (queues that hold a
    burst, no inflight cap of its own): its port."""
    if shutil.which("mosquitto") is None:
        pytest.skip("needs the mosquitto binary")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 2000000\nmax_inflight_messages 0\nmax_queued_bytes 0\n"
    )
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 5
    while not reachable("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(5)


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def pg_admin_url(servers_dir: Path) -> Iterator[str]:
    """A PostgreSQL server to create test databases on."""
    if reachable("127.0.0.1", 5432):
        yield "postgresql://postgres@127.0.0.1:5432/postgres"
        return
    from storage.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(servers_dir / "postgres")
    url = pg.start()
    try:
        yield url
    finally:
        pg.stop()


def _with_database(url: str, database: str) -> str:
    base, _, query = url.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + database
    return f"{base}?{query}" if query else base


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    name = f"twin_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(pg_admin_url: str) -> Iterator[str]:
    """One migrated database for the whole run (tests use their own device ids)."""
    with fresh_database(pg_admin_url) as url:
        migrate(url)
        yield url


@pytest.fixture(scope="session")
def redis_url(servers_dir: Path) -> Iterator[str]:
    if reachable("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/0"
        return
    from storage.embedded import EmbeddedRedis

    server = EmbeddedRedis(servers_dir / "redis.db")
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    if reachable("127.0.0.1", 1883):
        yield "mqtt://127.0.0.1:1883"
        return
    from storage.embedded import EmbeddedBroker

    broker = EmbeddedBroker()
    url = broker.start()
    try:
        yield url
    finally:
        broker.stop()


@pytest.fixture
def topic_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:10]}/"


_STARTED: list[EngineProcess] = []


@pytest.fixture(autouse=True)
def _no_engine_left_behind() -> Iterator[None]:
    """A test that fails half-way must not leave its engine running after the test."""
    yield
    while _STARTED:
        engine = _STARTED.pop()
        if engine.proc is not None and engine.proc.poll() is None:
            engine.proc.kill()
            engine.proc.wait(10)


@dataclass
class EngineProcess:
    """``twin run`` as a child process, its log collected line by line."""

    env: dict[str, str]
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def start(self, timeout_s: float = 60.0) -> EngineProcess:
        self.spawn()
        self.wait_for("MQTT subscribed", timeout_s)
        return self

    def spawn(self) -> EngineProcess:
        """Start without waiting (the processes of a cluster wait for each other)."""
        self.lines = []
        _STARTED.append(self)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "run", *self.args],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def wait_for(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"engine never logged {text!r}:\n" + "\n".join(self.lines[-40:]))

    def stop(self, timeout_s: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def wait(self, timeout_s: float = 60.0) -> int:
        """Wait for the exit code (killing the engine if it never comes)."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        return code

    @property
    def log(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def engine_env(
    database_url: str, redis_url: str, mqtt_url: str, redis_prefix: str, topic_prefix: str
) -> dict[str, str]:
    run_id = topic_prefix.strip("/")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update(
        TWIN_DATABASE_URL=database_url,
        TWIN_REDIS_URL=redis_url,
        TWIN_MQTT_URL=mqtt_url,
        TWIN_REDIS_PREFIX=redis_prefix,
        TWIN_TOPIC_PREFIX=topic_prefix,
        TWIN_MQTT_CLIENT_ID=run_id,
        TWIN_MQTT_GROUP=run_id,
        TWIN_METRICS_PORT="0",
        TWIN_API="off",  # the API tests turn it on, on a free port
        TWIN_SNAPSHOT_INTERVAL_S="1",
        TWIN_LOG_LEVEL="INFO",
        PYTHONPATH=str(ROOT),
    )
    return env


@pytest.fixture
def engine(engine_env: dict[str, str]) -> Iterator[EngineProcess]:
    proc = EngineProcess(engine_env)
    yield proc
    if proc.proc is not None and proc.proc.poll() is None:
        proc.stop()


@pytest.fixture
def engine_collector() -> Iterator[None]:
    """The garbage collector tuned as the engine tunes it, for benchmarks of the twin step."""
    threshold = gc.get_threshold()
    collector.off_the_hot_path()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
