"""Keeps maintenance recommendations current, beside the dataflow and never in its path.

Twins queue themselves when they cross a usage boundary (``twin.processor``); recording a
service from the CLI queues the device too. Every few seconds this thread takes the queued
devices, reads their facts from PostgreSQL (registry, latest twin snapshot, service history,
recent anomalies), ranks their parts against the stored catalog and feedback, and saves the
result (``storage.recommendations.save``). A backlog (an engine start, a fleet's first sight)
is worked off at most a quarter of the time: the thread shares the process with the dataflow.
The twin hash in Redis gets ``recs_open`` and ``recs_top`` (the most urgent part) when the
device is online.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
import psycopg

from flows.runtime import metrics
from flows.runtime.rounds import RoundThread
from flows.runtime.settings import Settings
from storage import recommendations as store
from storage import registry
from storage.live_store import RecommendationSummaries
from storage.reference import load_catalog
from twin.maintenance.catalog import Catalog
from twin.maintenance.recommend import RecommenderConfig, recommend
from twin.profiles import ProfileBook

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    devices: int = 0
    opened: int = 0
    updated: int = 0
    unchanged: int = 0
    cleared: int = 0


def evaluate(
    conn: psycopg.Connection,
    device_ids: Sequence[str],
    profiles: ProfileBook,
    catalog: Catalog,
    *,
    config: RecommenderConfig | None = None,
    now: datetime | None = None,
    live: RecommendationSummaries | None = None,
) -> Evaluation:
    """Rank and save the recommendations of ``device_ids`` (one transaction)."""
    now = now or datetime.now(UTC)
    config = config or RecommenderConfig()
    facts = store.facts_for(conn, device_ids, profiles, now)
    votes = store.feedback_counts(conn)
    done = Evaluation(devices=len(facts))
    summary: dict[str, tuple[int, str]] = {}
    for device_id, device in facts.items():
        recs = recommend(device, catalog, now, config, votes)
        saved = store.save(conn, device_id, recs)
        done.opened += saved.opened
        done.updated += saved.updated
        done.unchanged += saved.unchanged
        done.cleared += saved.cleared
        summary[device_id] = (len(recs), recs[0].part if recs else "")
    conn.commit()
    if live is not None and summary:
        live.write(summary)
    metrics.RECOMMENDATIONS.labels("opened").inc(done.opened)
    metrics.RECOMMENDATIONS.labels("updated").inc(done.updated)
    metrics.RECOMMENDATIONS.labels("cleared").inc(done.cleared)
    return done


class Recommender(RoundThread):
    what = "recommendations"

    def __init__(
        self,
        database_url: str,
        profiles: ProfileBook,
        stop: threading.Event,
        *,
        redis_url: str | None = None,
        redis_prefix: str = "",
        poll_s: float = 2.0,
        catalog_ttl_s: float = 60.0,
        batch: int = 100,
        duty: float = 0.25,
    ) -> None:
        super().__init__("recommender", database_url, stop, poll_s)
        self._profiles = profiles
        self._catalog_ttl = catalog_ttl_s
        self._batch = batch
        self._rest = (1 - duty) / duty
        """Seconds of rest per second of work: ranking shares the process (and its GIL) with
        the dataflow, so a burst (an engine start, a fleet's first sight) must not starve it."""
        self._live = RecommendationSummaries(redis_url, redis_prefix) if redis_url else None
        self._catalog: tuple[float, Catalog] | None = None

    def catalog(self, conn: psycopg.Connection) -> Catalog:
        """The stored catalog, read again after ``catalog_ttl_s`` (edits apply without a
        restart)."""
        if self._catalog is None or time.monotonic() - self._catalog[0] > self._catalog_ttl:
            self._catalog = (time.monotonic(), load_catalog(conn))
        return self._catalog[1]

    def run(self) -> None:
        log.info("recommendations: kept current from the queue")
        super().run()

    def round(self) -> None:
        while not self._halt.is_set():
            started = time.monotonic()
            if self.run_once() < self._batch:
                return
            # a backlog: keep going, at the duty cycle
            self._halt.wait((time.monotonic() - started) * self._rest)

    def run_once(self) -> int:
        """Evaluate the queued devices; returns how many were taken."""
        with self._kept.session() as conn:
            devices = store.claim(conn, self._batch)
            if not devices:
                return 0
            try:
                evaluate(
                    conn,
                    devices,
                    self._profiles,
                    self.catalog(conn),
                    live=self._live,
                )
            except Exception:
                conn.rollback()
                store.enqueue(conn, devices, "retry")  # not lost: tried again next round
                raise
        return len(devices)


def from_settings(settings: Settings, profiles: ProfileBook, stop: threading.Event) -> Recommender:
    """The recommender of an engine; its configuration is registered in ``model_versions``."""
    config = RecommenderConfig()
    registry.register(
        settings.require_database(), config.version, "recommender", msgspec.to_builtins(config)
    )
    return Recommender(
        settings.require_database(),
        profiles,
        stop,
        redis_url=settings.redis_url,
        redis_prefix=settings.redis_prefix,
    )
