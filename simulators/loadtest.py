"""Load tests against a running engine: publish at a rate, then count what the stores hold.

Each level publishes a fleet whose device ids carry a fresh run prefix, so the counts in
PostgreSQL belong to that level alone. Readings delivered = distinct (device, ts, seq) rows;
lost = published - delivered; duplicates = rows beyond the distinct ones. Latency: device
timestamp → row written (from the rows themselves) and device timestamp → visible in the
Redis hash (a sampler polls a few hundred devices' hashes every 20 ms). Latency leaves out the
first ``warmup_s`` seconds, in which every device of the level is new and gets registered; loss
and duplicates count everything.

A ramp steps the rate up by a factor until loss or p99 latency crosses its bound, or until the
publisher itself cannot keep up, and reports the highest rate that held.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from simulators.latency import LiveLatencySampler
from simulators.metrics import PublishMetrics
from simulators.publisher import Publisher, PublisherConfig, PublishReport
from storage.queries import delivery

SAMPLED_DEVICES = 200


@dataclass
class LevelResult:
    requested_rate: float
    achieved_rate: float
    publisher_kept_up: bool
    published: int
    delivered: int
    lost: int
    loss_pct: float
    duplicates: int
    latency_pg_ms: dict[str, float] = field(default_factory=dict)
    latency_redis_ms: dict[str, float] = field(default_factory=dict)
    device_prefix: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Bounds:
    max_loss_pct: float = 0.1
    max_p99_ms: float = 1000.0


@dataclass
class LoadTest:
    publisher: PublisherConfig
    database_url: str
    redis_url: str | None
    redis_prefix: str = ""
    settle_s: float = 10.0
    """Quiet time after publishing before the stores are read (rows still arriving resets it)."""
    warmup_s: float = 2.0
    """Latency leaves out the first seconds, in which every (new) device is registered."""
    say: Callable[[str], None] = print
    metrics: PublishMetrics | None = None

    def level(self, rate: float | None = None) -> LevelResult:
        token = secrets.token_hex(3)
        traffic = replace(
            self.publisher.traffic,
            rate=rate or self.publisher.traffic.rate,
            id_prefix=f"{self.publisher.traffic.id_prefix}lt{token}-",
        )
        config = replace(self.publisher, traffic=traffic, client_id=f"twin-load-{token}")
        pub = Publisher(config, metrics=self.metrics)
        sampler = None
        if self.redis_url:
            ids = [d.device_id for d in pub.fleet[:: max(1, len(pub.fleet) // SAMPLED_DEVICES)]]
            sampler = LiveLatencySampler(self.redis_url, ids, self.redis_prefix).start()
        report = pub.run()
        result = self._collect(report, traffic.id_prefix, traffic.duration_s)
        if self.metrics is not None:
            self.metrics.delivered.inc(result.delivered)
            self.metrics.lost.inc(result.lost)
        if sampler is not None:
            steady_ms = report.start_ms + round(self.warmup_s * 1000)
            result.latency_redis_ms = {k: round(v, 1) for k, v in sampler.stop(steady_ms).items()}
        return result

    def _collect(self, report: PublishReport, prefix: str, duration_s: float) -> LevelResult:
        start_ms = report.start_ms - 60_000  # a batch's first reading precedes its message
        end_ms = report.start_ms + round(max(duration_s, report.seconds) * 1000) + 60_000
        last, quiet_since = -1, time.monotonic()
        steady_ms = report.start_ms + round(self.warmup_s * 1000)
        found = delivery(self.database_url, prefix, start_ms, end_ms, steady_ms)
        while found.distinct_readings < report.readings:
            if found.rows != last:
                last, quiet_since = found.rows, time.monotonic()
            elif time.monotonic() - quiet_since >= self.settle_s:
                break
            time.sleep(0.5)
            found = delivery(self.database_url, prefix, start_ms, end_ms, steady_ms)
        lost = max(0, report.readings - found.distinct_readings)
        return LevelResult(
            requested_rate=report.requested_rate,
            achieved_rate=round(report.achieved_rate, 1),
            publisher_kept_up=report.kept_up,
            published=report.readings,
            delivered=found.distinct_readings,
            lost=lost,
            loss_pct=round(100 * lost / report.readings, 4) if report.readings else 0.0,
            duplicates=found.rows - found.distinct_readings,
            latency_pg_ms={k: round(v, 1) for k, v in found.latency_ms.items()},
            device_prefix=prefix,
            seconds=round(report.seconds, 2),
        )

    def ramp(
        self, start_rate: float, factor: float, max_rate: float, bounds: Bounds
    ) -> tuple[list[LevelResult], float, str]:
        """Levels from ``start_rate`` up; returns them, the highest that held, and why it ended."""
        levels: list[LevelResult] = []
        best, rate, why = 0.0, start_rate, f"reached --max-rate {max_rate:.0f}"
        while rate <= max_rate:
            self.say(f"ramp: {rate:.0f} readings/s for {self.publisher.traffic.duration_s:.0f}s")
            result = self.level(rate)
            levels.append(result)
            self.say("  " + row(result))
            p99 = result.latency_pg_ms.get("p99", 0.0)
            if not result.publisher_kept_up:
                why = f"the publisher could not keep up at {rate:.0f}/s (its own ceiling)"
                break
            if result.loss_pct > bounds.max_loss_pct:
                why = f"loss {result.loss_pct:.2f}% > {bounds.max_loss_pct}% at {rate:.0f}/s"
                break
            if p99 > bounds.max_p99_ms:
                why = f"p99 {p99:.0f} ms > {bounds.max_p99_ms:.0f} ms at {rate:.0f}/s"
                break
            best = rate
            rate *= factor
        return levels, best, why


HEADER = (
    f"{'requested/s':>11} {'achieved/s':>10} {'published':>10} {'delivered':>10} {'lost':>6} "
    f"{'loss %':>7} {'dup':>4} {'pg p50':>7} {'p95':>7} {'p99':>7} {'max':>7} "
    f"{'redis p50':>9} {'p99':>7}"
)


def row(r: LevelResult) -> str:
    pg, rd = r.latency_pg_ms, r.latency_redis_ms

    def ms(d: dict[str, float], k: str) -> str:
        return f"{d[k]:.0f}" if k in d else "-"

    flag = "" if r.publisher_kept_up else "  (publisher ceiling)"
    return (
        f"{r.requested_rate:>11.0f} {r.achieved_rate:>10.0f} {r.published:>10} "
        f"{r.delivered:>10} {r.lost:>6} {r.loss_pct:>7.3f} {r.duplicates:>4} "
        f"{ms(pg, 'p50'):>7} {ms(pg, 'p95'):>7} {ms(pg, 'p99'):>7} {ms(pg, 'max'):>7} "
        f"{ms(rd, 'p50'):>9} {ms(rd, 'p99'):>7}{flag}"
    )
