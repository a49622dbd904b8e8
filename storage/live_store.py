"""Live twin state in Redis: ``twin:{device_id}`` hashes and a GEO set of positioned devices.

Writes are coalesced: one batch becomes at most one HSET + EXPIRE per device and one GEOADD,
in one pipeline round trip. The HSET + EXPIRE pairs go through a small Lua script that takes a
few hundred devices per call, each device's fields packed into one MessagePack argument (field
and value as text, exactly as the client would send them) that Redis unpacks: the Python client
spends far more per argument than Redis does, so one argument per device costs a fraction of
forty. The live state is "latest
wins", so this writer never blocks the dataflow when Redis is away: it keeps the newest
unwritten state per device (bounded by the number of devices) and flushes it once Redis
answers again, backing off between attempts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import msgspec
import redis

from storage.live_keys import LiveKeys
from twin import defaults
from twin.records import TwinOutput

log = logging.getLogger(__name__)

SET_HASHES = """
local ttl = ARGV[1]
for k = 1, #KEYS do
  redis.call('HSET', KEYS[k], unpack(cmsgpack.unpack(ARGV[k + 1])))
  redis.call('EXPIRE', KEYS[k], ttl)
end
return #KEYS
"""
"""KEYS: the hashes; ARGV: the TTL, then per key its fields as one MessagePack array of
field, value, field, value ... (all text)."""

_pack = msgspec.msgpack.Encoder().encode


def packed_fields(view: Mapping[str, str | int | float]) -> bytes:
    """A live view as the script takes it: numbers as the text the Redis client writes
    (``str``, the shortest text that reads back as the same float), text as itself. Formatting
    the numbers is most of the cost; text is passed as it is."""
    fields: list[str] = []
    add = fields.append
    for name, value in view.items():
        add(name)
        add(value if type(value) is str else str(value))
    return _pack(fields)


DEVICES_PER_CALL = 250

GEO_MAX_LAT = 85.05112878
"""Redis GEO covers Web Mercator latitudes only; polar positions stay in the hash."""


@dataclass
class LiveWriteResult:
    written: int = 0
    pending: int = 0
    failed: bool = False


class LiveStore:
    """Writes the live view under :class:`~storage.live_keys.LiveKeys`."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "",
        ttl_s: int = defaults.TWIN_TTL_S,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        stream_maxlen: int = 10_000,
    ) -> None:
        self._url = url
        self.prefix = prefix
        self.keys = LiveKeys(prefix)
        self.ttl_s = ttl_s
        self._client: redis.Redis | None = None
        self._pending: dict[str, dict[str, str | int | float]] = {}
        self._pending_geo: dict[str, tuple[float, float]] = {}
        self._pending_stream: list[dict[str, str | int]] = []
        self.stream_maxlen = stream_maxlen
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self._backoff = 0.0
        self._next_attempt = 0.0
        self._clock = clock
        self._lock = threading.Lock()
        """Guards what is pending: batches are added on the dataflow's thread and flushed on
        the writer's."""
        self.failures = 0

    def key(self, device_id: str) -> str:
        return self.keys.twin(device_id)

    @property
    def geo_key(self) -> str:
        return self.keys.geo

    @property
    def alert_stream(self) -> str:
        return self.keys.alerts

    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self._url, socket_timeout=5, socket_connect_timeout=5, decode_responses=False
            )
        return self._client

    @property
    def pending(self) -> int:
        return len(self._pending) + len(self._pending_geo) + len(self._pending_stream)

    def write(self, outputs: Sequence[TwinOutput]) -> LiveWriteResult:
        self.add(outputs)
        return self.flush()

    def add(self, outputs: Sequence[TwinOutput]) -> None:
        """Take a batch's live state, to be written by the next :meth:`flush` (which may run
        on another thread)."""
        with self._lock:
            self._add(outputs)

    def _add(self, outputs: Sequence[TwinOutput]) -> None:
        pending, geo = self._pending, self._pending_geo
        for out in outputs:
            if out.live is not None:  # a live view is complete: the newest one replaces
                pending[out.device_id] = out.live
            if out.lat_lon is not None and -GEO_MAX_LAT <= out.lat_lon[0] <= GEO_MAX_LAT:
                geo[out.device_id] = out.lat_lon
            for t in out.alerts:  # every transition, in order: consumers follow the stream
                self._pending_stream.append(
                    {
                        "alert_id": t.alert_id,
                        "device_id": t.device_id,
                        "rule_id": t.rule_id,
                        "transition": t.transition,
                        "severity": t.severity or t.peak_severity,
                        "at_ms": t.at_ms,
                        "detail": t.detail,
                    }
                )
        if len(self._pending_stream) > self.stream_maxlen:  # Redis away for long: keep newest
            del self._pending_stream[: -self.stream_maxlen]

    def flush(self, *, force: bool = False) -> LiveWriteResult:
        with self._lock:
            if not self._pending and not self._pending_geo and not self._pending_stream:
                return LiveWriteResult()
            if not force and self._clock() < self._next_attempt:
                return LiveWriteResult(pending=self.pending)
            states, geo, stream = self._pending, self._pending_geo, self._pending_stream
            self._pending, self._pending_geo, self._pending_stream = {}, {}, []
        try:
            pipe = self._redis().pipeline(transaction=False)
            keys: list[str] = []
            args: list[bytes | int] = [self.ttl_s]
            for device_id, mapping in states.items():
                keys.append(self.key(device_id))
                args.append(packed_fields(mapping))
                if len(keys) == DEVICES_PER_CALL:
                    pipe.eval(SET_HASHES, len(keys), *keys, *args)
                    keys, args = [], [self.ttl_s]
            if keys:
                pipe.eval(SET_HASHES, len(keys), *keys, *args)
            if geo:
                members: list[float | str] = []
                for device_id, (lat, lon) in geo.items():
                    members.extend((lon, lat, device_id))
                pipe.geoadd(self.geo_key, members)
            for entry in stream:
                pipe.xadd(
                    self.alert_stream,
                    entry,  # type: ignore[arg-type]
                    maxlen=self.stream_maxlen,
                    approximate=True,
                )
            pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self._hold(states, geo, stream)
            self.failures += 1
            self._backoff = min(max(self._backoff * 2, self._backoff_initial), self._backoff_max)
            self._next_attempt = self._clock() + self._backoff
            if self.failures == 1 or self.failures % 50 == 0:
                log.warning(
                    "Redis write failed (%s); holding %d device states, next try in %.1fs",
                    exc,
                    self.pending,
                    self._backoff,
                )
            self._client = None
            return LiveWriteResult(pending=self.pending, failed=True)
        except redis.RedisError as exc:
            # refused for its content: the next update of these devices replaces it anyway
            log.error("Redis refused a live-state batch of %d devices: %s", len(states), exc)
            return LiveWriteResult(failed=True)
        written = len(states)
        if self.failures:
            log.info("Redis is back; flushed %d held device states", written)
        self.failures = 0
        self._backoff = 0.0
        return LiveWriteResult(written=written)

    def _hold(
        self,
        states: dict[str, dict[str, str | int | float]],
        geo: dict[str, tuple[float, float]],
        stream: list[dict[str, str | int]],
    ) -> None:
        """What a failed flush took goes back, behind anything newer taken meanwhile."""
        with self._lock:
            for device_id, view in states.items():
                self._pending.setdefault(device_id, view)
            for device_id, position in geo.items():
                self._pending_geo.setdefault(device_id, position)
            self._pending_stream[:0] = stream
            if len(self._pending_stream) > self.stream_maxlen:
                del self._pending_stream[: -self.stream_maxlen]

    def close(self) -> None:
        if self._pending or self._pending_geo or self._pending_stream:
            self.flush(force=True)
        if self._client is not None:
            self._client.close()
            self._client = None


SET_IF_ONLINE = """
for k = 1, #KEYS do
  if redis.call('EXISTS', KEYS[k]) == 1 then
    redis.call('HSET', KEYS[k], 'recs_open', ARGV[2 * k - 1], 'recs_top', ARGV[2 * k])
  end
end
return #KEYS
"""
"""An offline device's hash has expired: it is not brought back without its TTL."""


class RecommendationSummaries:
    """``recs_open`` and ``recs_top`` of the twins that are live, after each ranking."""

    def __init__(self, url: str, prefix: str = "") -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=5)
        self.keys = LiveKeys(prefix)

    def write(self, summary: dict[str, tuple[int, str]]) -> bool:
        """``summary``: device id → (open recommendations, top part). False if Redis failed
        (the next ranking writes them again)."""
        keys = [self.keys.twin(d) for d in summary]
        args = [v for pair in summary.values() for v in pair]
        try:
            self._client.eval(SET_IF_ONLINE, len(keys), *keys, *args)
        except redis.RedisError as exc:
            log.warning("recommendation summary not written to Redis: %s", exc)
            return False
        return True
