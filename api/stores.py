"""The API's connections to the stores, opened at start and shared by its threads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool

from api.config import ApiConfig
from api.key_cache import KeyCache
from api.status_counts import StatusCounts
from storage.database import psycopg_url
from storage.live_feed import LiveFeed
from storage.live_reads import LiveReads


class Stores:
    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        self.pool = ConnectionPool(
            psycopg_url(config.database_url),
            min_size=1,
            max_size=config.pool_size,
            open=False,
            timeout=5,
            kwargs={"connect_timeout": 5},
        )
        self.live = LiveReads(config.redis_url, config.redis_prefix) if config.redis_url else None
        self.counts = StatusCounts(self.live) if self.live is not None else None
        """Live twins by status, shared by every caller."""
        self.feed = LiveFeed(config.redis_url, config.redis_prefix) if config.redis_url else None
        """Live reads on the server's event loop (the routes that answer most often)."""
        self.keys = KeyCache(config.key_cache_s)
        self.streams = 0
        """Live-push streams open now (they run on the server's event loop, one thread)."""

    def open(self) -> None:
        self.pool.open(wait=False)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self.pool.connection() as conn:
            yield conn

    async def close_feed(self) -> None:
        if self.feed is not None:
            await self.feed.close()

    def close(self) -> None:
        self.pool.close()
        if self.live is not None:
            self.live.close()
