"""Delivers alert notifications from the outbox, beside the dataflow and never in its path.

It runs as a thread of ``twin run`` (``TWIN_NOTIFY=on``) or on its own as ``twin notify``; several
may share one outbox. Every poll it adds the reminders that are due, claims due notifications
and hands each route's share to a small pool of delivery threads. A route that still has
deliveries in flight is not claimed again, so a receiver that hangs holds up its own route
only: other routes, and the engine's ingest, go on.

Per notification: each attempt is written to ``notification_log``; a failure is retried after
``backoff_s * 2 ** (attempt - 1)`` and given up after ``max_attempts`` (logged as ``gave_up``);
at most ``max_per_device_hour`` deliveries per device and route an hour (beyond that the
notification is logged as ``rate_limited`` and not sent; resolutions always go out).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor

import psycopg

from flows.jobs import channels
from flows.runtime import metrics
from flows.runtime.rounds import RoundThread
from flows.runtime.settings import Settings
from storage import outbox
from storage.database import connect
from twin.errors import DeliveryError

log = logging.getLogger(__name__)


class Notifier(RoundThread):
    what = "notifications"

    def __init__(
        self,
        database_url: str,
        stop: threading.Event,
        *,
        poll_s: float = 1.0,
        timeout_s: float = 5.0,
        max_attempts: int = 6,
        backoff_s: float = 2.0,
        concurrency: int = 4,
        claim_limit: int = 20,
    ) -> None:
        super().__init__("notifier", database_url, stop, poll_s)
        self._url = database_url
        self._timeout = timeout_s
        self._max_attempts = max_attempts
        self._backoff = backoff_s
        self._claim_limit = claim_limit
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="notify")
        self._in_flight: dict[str, Future[None]] = {}
        self.delivered = 0

    def run(self) -> None:
        log.info("notifications: delivering from the outbox")
        super().run()

    def round(self) -> None:
        self.run_once()

    def finish(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        super().finish()

    def run_once(self, *, wait: bool = False) -> int:
        """Add due reminders and start delivering what is due; returns how many were claimed.
        ``wait``: return only when those deliveries are done (for tools and tests)."""
        self._in_flight = {r: f for r, f in self._in_flight.items() if not f.done()}
        # the lease covers every attempt of a claim in turn, so no other dispatcher retakes
        # a notification while this one is still working on it
        lease_s = self._claim_limit * (self._timeout + 1) + 30
        with self._kept.session() as conn:
            outbox.enqueue_reminders(conn)
            due = outbox.claim(
                conn, limit=self._claim_limit, lease_s=lease_s, skip_routes=list(self._in_flight)
            )
        by_route: dict[str, list[outbox.Due]] = defaultdict(list)
        for item in due:
            by_route[item.route_id].append(item)
        started = [self._pool.submit(self._deliver_route, items) for items in by_route.values()]
        for route_id, future in zip(by_route, started, strict=True):
            self._in_flight[route_id] = future
        if wait:
            for future in started:
                future.result()
        return len(due)

    def close(self) -> None:
        """Wait for the deliveries in flight (each ends within its timeout)."""
        self._pool.shutdown(wait=True)

    def _deliver_route(self, items: list[outbox.Due]) -> None:
        try:
            with connect(self._url) as conn:
                for item in items:
                    if self._halt.is_set():
                        return  # the lease runs out and the next dispatcher takes it
                    self._deliver(conn, item)
        except psycopg.Error as exc:
            log.warning("notifications: outbox unavailable while delivering: %s", exc)
        except Exception:
            log.exception("notifications: delivery failed unexpectedly")

    def _deliver(self, conn: psycopg.Connection, due: outbox.Due) -> None:
        if due.transition != "resolved" and due.max_per_device_hour > 0:
            sent = outbox.sent_last_hour(conn, due.device_id, due.route_id)
            if sent >= due.max_per_device_hour:
                outbox.record(conn, due, "rate_limited", f"{sent} delivered in the last hour")
                metrics.NOTIFICATIONS.labels(due.channel, "rate_limited").inc()
                return
        try:
            answer = channels.send(due.channel, due.target, due.secret, due.payload, self._timeout)
        except DeliveryError as exc:
            if due.attempts + 1 >= self._max_attempts:
                outbox.record(conn, due, "gave_up", str(exc))
                metrics.NOTIFICATIONS.labels(due.channel, "gave_up").inc()
                log.warning(
                    "notification %d (%s) to %s given up after %d attempts: %s",
                    due.id,
                    due.route_id,
                    due.target,
                    due.attempts + 1,
                    exc,
                )
            else:
                delay = self._backoff * 2**due.attempts
                outbox.record(conn, due, "failed", str(exc), retry_in_s=delay)
                metrics.NOTIFICATIONS.labels(due.channel, "failed").inc()
            return
        outbox.record(conn, due, "delivered", answer)
        metrics.NOTIFICATIONS.labels(due.channel, "delivered").inc()
        self.delivered += 1


def from_settings(settings: Settings, stop: threading.Event) -> Notifier:
    if not settings.database_url:
        raise ValueError("notifications need TWIN_DATABASE_URL")
    return Notifier(
        settings.database_url,
        stop,
        timeout_s=settings.notify_timeout_s,
        backoff_s=settings.notify_backoff_s,
        max_attempts=settings.notify_max_attempts,
    )
