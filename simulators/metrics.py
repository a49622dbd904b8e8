"""Prometheus metrics of the simulators and the load generator (``twin_sim_*``, ``twin_load_*``).

They live in a registry of their own, so a process that also runs the engine (the demo) never
mixes the two, and they are brought up to date from the publish report once a second rather
than on every message: the publisher's loop stays as fast as it was.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from simulators.publisher import PublishReport

log = logging.getLogger(__name__)


class PublishMetrics:
    """What a publisher has sent, for Prometheus; ``update`` takes the running report."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "twin_sim_messages_published_total", "MQTT messages published", registry=r
        )
        self.readings = Counter(
            "twin_sim_readings_published_total", "Readings in the messages published", registry=r
        )
        self.events = Counter(
            "twin_sim_events_published_total", "Event messages published", registry=r
        )
        self.bad = Counter(
            "twin_sim_bad_messages_published_total",
            "Deliberately malformed messages published, by reason",
            ["reason"],
            registry=r,
        )
        self.target = Gauge(
            "twin_sim_target_readings_per_second",
            "Readings per second the schedule asks for (0 for replays)",
            registry=r,
        )
        self.lag = Gauge(
            "twin_sim_schedule_lag_seconds",
            "How far the publisher is behind its schedule (above 1 s: it cannot keep up)",
            registry=r,
        )
        self.devices = Gauge("twin_sim_devices", "Devices being simulated", registry=r)
        self.connections = Gauge("twin_sim_connections", "MQTT connections publishing", registry=r)
        self.lost = Counter(
            "twin_load_lost_readings_total",
            "Load test: readings published and not found in PostgreSQL",
            registry=r,
        )
        self.delivered = Counter(
            "twin_load_delivered_readings_total",
            "Load test: readings published and found in PostgreSQL",
            registry=r,
        )
        self._seen = PublishReport()
        self._bad_seen: dict[str, int] = {}

    def start(self, report: PublishReport) -> None:
        """A new run: counters carry on from the previous one, gauges describe this one."""
        self._seen = PublishReport()
        self._bad_seen = {}
        self.target.set(report.requested_rate)
        self.devices.set(report.devices)
        self.connections.set(report.connections)
        self.lag.set(0)

    def update(self, report: PublishReport, lag_s: float, bad: dict[str, int]) -> None:
        seen = self._seen
        self.messages.inc(report.messages - seen.messages)
        self.readings.inc(report.readings - seen.readings)
        self.events.inc(report.events - seen.events)
        for reason, n in bad.items():
            self.bad.labels(reason).inc(n - self._bad_seen.get(reason, 0))
        self._bad_seen = dict(bad)
        seen.messages, seen.readings, seen.events = report.messages, report.readings, report.events
        self.lag.set(max(0.0, lag_s))

    def serve(self, port: int) -> None:
        start_http_server(port, addr="0.0.0.0", registry=self.registry)
        log.info("publisher metrics on :%d/metrics", port)
