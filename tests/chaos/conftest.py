"""Chaos fixtures: private servers per test, and the scenario size (short in `make test`, full
in `make chaos`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.chaos.servers import Mosquitto, Postgres, Redis, mosquitto_available


@dataclass(frozen=True)
class Size:
    devices: int
    rate: float  # readings per second
    seconds: float  # how long the publisher runs
    outage_s: float  # a store's outage ("long" outages are three times this)
    poison: int  # malformed messages in the flood


SHORT = Size(devices=20, rate=300, seconds=12, outage_s=4, poison=400)
FULL = Size(devices=200, rate=2000, seconds=60, outage_s=30, poison=20_000)


@pytest.fixture
def size(request: pytest.FixtureRequest) -> Size:
    return FULL if request.config.getoption("--chaos-full") else SHORT


@dataclass
class Stack:
    mosquitto: Mosquitto
    postgres: Postgres
    redis: Redis


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    if not mosquitto_available():
        pytest.skip("the chaos suite needs the mosquitto binary (apt-get install mosquitto)")
    servers = Stack(Mosquitto(tmp_path / "mq"), Postgres(tmp_path), Redis(tmp_path / "redis"))
    servers.mosquitto.start()
    servers.postgres.start()
    servers.redis.start()
    yield servers
    for server in (servers.mosquitto, servers.redis, servers.postgres):
        with contextlib.suppress(Exception):  # a test may have stopped it already
            server.stop()
