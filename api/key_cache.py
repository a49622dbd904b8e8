"""Keys that checked out, trusted for :attr:`~api.config.ApiConfig.key_cache_s` before they
are looked up again: the key table is not read on every request, and a revoked key stops
working within that time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from storage.api_keys import ApiKey


class KeyCache:
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self._clock = ttl_s, clock
        self._held: dict[bytes, tuple[ApiKey, float]] = {}
        self._lock = threading.Lock()

    def get(self, digest: bytes) -> ApiKey | None:
        with self._lock:
            held = self._held.get(digest)
            if held is None or held[1] < self._clock():
                return None
            return held[0]

    def put(self, digest: bytes, key: ApiKey) -> None:
        with self._lock:
            if len(self._held) > 10_000:  # bounded: forget all, they are looked up again
                self._held.clear()
            self._held[digest] = (key, self._clock() + self.ttl_s)

    def forget(self, key_id: int) -> None:
        with self._lock:
            for digest in [d for d, (k, _) in self._held.items() if k.id == key_id]:
                del self._held[digest]
