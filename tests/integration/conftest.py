"""Fixtures of the API tests: a fleet written by the real writers, and the API serving it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from api.config import ApiConfig
from api.server import ApiThread
from tests.integration.api_fleet import Fleet, free_port, write_fleet


@pytest.fixture(scope="module")
def fleet_prefix() -> Iterator[str]:
    yield f"api-{uuid.uuid4().hex[:8]}:"


@pytest.fixture(scope="module")
def fleet(database_url: str, redis_url: str, fleet_prefix: str) -> Iterator[Fleet]:
    yield write_fleet(database_url, redis_url, fleet_prefix, f"api{uuid.uuid4().hex[:6]}")
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{fleet_prefix}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="module")
def client(
    database_url: str, redis_url: str, fleet_prefix: str, fleet: Fleet
) -> Iterator[httpx.Client]:
    """The API served by uvicorn on a free port, as ``twin run`` serves it."""
    config = ApiConfig(database_url=database_url, redis_url=redis_url, redis_prefix=fleet_prefix)
    server = ApiThread(config, "127.0.0.1", free_port()).start()
    assert server.started
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as http:
        yield http
    server.stop()
