"""Is a store answering? One cheap round trip with a short timeout, for readiness checks."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import redis

from storage.database import psycopg_url

Probe = Callable[[], bool]


def postgres_probe(url: str) -> Probe:
    def probe() -> bool:
        try:
            with psycopg.connect(psycopg_url(url), connect_timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    return probe


def redis_probe(url: str) -> Probe:
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)

    def probe() -> bool:
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False

    return probe
