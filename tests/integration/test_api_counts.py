"""Live status counts are shared: one scan of Redis serves every caller for a while."""

from __future__ import annotations

import uuid

import redis

from api.status_counts import StatusCounts
from storage.live_reads import LiveReads


def test_one_count_serves_every_caller_until_it_is_stale(redis_url: str):
    prefix = f"counts-{uuid.uuid4().hex[:6]}:"
    client = redis.Redis.from_url(redis_url)
    client.hset(f"{prefix}twin:a", mapping={"status": "online"})
    client.hset(f"{prefix}twin:b", mapping={"status": "silent"})
    clock = [100.0]
    live = LiveReads(redis_url, prefix)
    counts = StatusCounts(live, ttl_s=5.0, clock=lambda: clock[0])
    try:
        assert counts.get() == {"online": 1, "silent": 1}
        client.hset(f"{prefix}twin:c", mapping={"status": "online"})
        clock[0] += 4.9
        assert counts.get() == {"online": 1, "silent": 1}  # the shared count, not a new scan
        clock[0] += 0.1
        assert counts.get() == {"online": 2, "silent": 1}
    finally:
        client.delete(f"{prefix}twin:a", f"{prefix}twin:b", f"{prefix}twin:c")
        live.close()
