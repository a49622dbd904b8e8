"""Device → Redis latency, sampled while a load test runs."""

from __future__ import annotations

import threading
import time

from storage.queries import LastSeen, percentiles


class LiveLatencySampler:
    """Watches a sample of ``twin:{id}`` hashes and times when each new reading shows.

    Every ``interval_s`` it reads ``last_seen_ms`` (the newest reading's device timestamp) of
    each sampled device in one pipeline; when the value changes, now minus that timestamp is
    one latency sample of device → Redis (resolution: the interval). Meant for devices that
    are new when sampling starts (a load test's own fleet).
    """

    def __init__(
        self,
        redis_url: str,
        device_ids: list[str],
        prefix: str = "",
        interval_s: float = 0.02,
    ) -> None:
        self._reader = LastSeen(redis_url, device_ids, prefix)
        self._interval = interval_s
        self._last: list[bytes | None] = [None] * len(device_ids)
        self.samples: list[tuple[int, float]] = []
        """(device timestamp, latency ms) of each new reading seen."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-sampler", daemon=True)
        self._since_ms = time.time_ns() // 1_000_000 - 60_000
        """Older readings are not this run's (0: a twin that has only sent attributes)."""

    def start(self) -> LiveLatencySampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            values = self._reader.read()
            if values is None:
                continue
            now_ms = time.time_ns() / 1e6
            for i, value in enumerate(values):
                if value is not None and value != self._last[i]:
                    self._last[i] = value
                    seen = int(value)
                    if seen >= self._since_ms:
                        self.samples.append((seen, now_ms - seen))

    def stop(self, since_ms: int = 0) -> dict[str, float]:
        """Stop; p50, p95, p99 and max (ms) of readings taken from ``since_ms`` on."""
        self._stop.set()
        self._thread.join(5)
        self._reader.close()
        return percentiles([lat for seen, lat in self.samples if seen >= since_ms])
