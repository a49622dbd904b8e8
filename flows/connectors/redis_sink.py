"""The Redis sink: the live state, which the next update replaces, written by a thread of its
own so that it never holds the flow (see :class:`storage.live_store.LiveStore`)."""

from __future__ import annotations

import threading
import time

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from flows.runtime import metrics
from storage.live_store import LiveStore
from twin import defaults
from twin.records import TwinOutput


class _RedisPartition(StatelessSinkPartition[TwinOutput]):
    """Hands each batch's live state to a writer thread and returns: the dataflow never waits
    for Redis (the live state is "latest wins", so the writer takes whatever is newest)."""

    FLUSH_EVERY_S = 0.5
    """How often the writer tries again while Redis is away (it backs off further itself)."""

    def __init__(self, sink: RedisSink) -> None:
        self._store = LiveStore(sink.url, prefix=sink.prefix, ttl_s=sink.ttl_s)
        self._wake = threading.Event()
        self._closing = False
        self._recent: list[TwinOutput] = []
        """The newest batch: its readings' ages sample the Redis stage's latency."""
        self._writer = threading.Thread(target=self._run, name="redis-writer", daemon=True)
        self._writer.start()

    def write_batch(self, items: list[TwinOutput]) -> None:
        self._store.add(items)
        self._recent = items
        metrics.SINK_BATCH.labels("redis").observe(len(items))
        self._wake.set()

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait(self.FLUSH_EVERY_S)
            self._wake.clear()
            self._flush()

    def _flush(self) -> None:
        recent = self._recent
        started = time.perf_counter()
        result = self._store.flush()
        if result.written:
            metrics.SINK_SECONDS.labels("redis").observe(time.perf_counter() - started)
            metrics.LIVE_WRITES.inc(result.written)
            metrics.latency("redis", recent, time.time_ns() // 1_000_000)
        if result.failed:
            metrics.SINK_RETRIES.labels("redis").inc()

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        self._writer.join(10)
        self._store.close()


class RedisSink(DynamicSink[TwinOutput]):
    """``twin:{id}`` hashes and the GEO set, coalesced per batch."""

    def __init__(self, url: str, *, prefix: str = "", ttl_s: int = defaults.TWIN_TTL_S) -> None:
        self.url, self.prefix, self.ttl_s = url, prefix, ttl_s

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RedisPartition:
        return _RedisPartition(self)
