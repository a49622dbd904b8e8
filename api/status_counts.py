"""Live twins by status, counted once and shared: ``/fleet/summary`` and every fleet stream
read the same count, so the scan of the twin hashes (0.57 s at 100,000 twins) runs at most once
per :data:`TTL_S` however many clients ask."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from storage.live_reads import LiveReads

TTL_S = 5.0
"""As often as a fleet stream sends its summary."""


class StatusCounts:
    def __init__(
        self, live: LiveReads, ttl_s: float = TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.live, self.ttl_s, self._clock = live, ttl_s, clock
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._at: float | None = None

    def get(self) -> dict[str, int]:
        """The count, at most ``ttl_s`` old; a caller that finds it stale counts again while
        the others wait for that count instead of starting their own."""
        with self._lock:
            if self._at is None or self._clock() - self._at >= self.ttl_s:
                self._counts = self.live.status_counts()
                self._at = self._clock()
            return dict(self._counts)
