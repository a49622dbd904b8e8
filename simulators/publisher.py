"""Publish simulated traffic over MQTT on schedule, over a few connections or one per device.

The schedule comes from ``simulators.traffic`` (device time); this module only paces it against
the wall clock. Devices are spread over ``connections`` MQTT connections (``per_device``: one
each, to test connection counts). paho's network loop is driven here rather than in paho's
threads: with a thread per client the QoS 1 acknowledgements fight the publishing thread for
the GIL and a client manages about a tenth of the rate. When the publisher cannot keep up, the
report says so (``kept_up`` false, the largest lag behind schedule) instead of pretending.
"""

from __future__ import annotations

import selectors
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulators.faults import Fault
from simulators.traffic import Outgoing, Traffic, TrafficConfig, TrafficSource
from twin.errors import ConfigurationError

if TYPE_CHECKING:
    from simulators.metrics import PublishMetrics

KEEP_UP_LAG_S = 1.0
"""Falling further behind schedule than this means the publisher is at its ceiling."""


@dataclass
class PublishReport:
    requested_rate: float = 0.0
    start_ms: int = 0
    """Device time zero: the first reading's timestamp (epoch ms)."""
    devices: int = 0
    connections: int = 0
    messages: int = 0
    readings: int = 0
    events: int = 0
    bad_messages: int = 0
    bad_by_reason: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    max_lag_s: float = 0.0
    unacknowledged_connections: int = 0
    faults: int = 0

    @property
    def achieved_rate(self) -> float:
        return self.readings / self.seconds if self.seconds > 0 else 0.0

    @property
    def kept_up(self) -> bool:
        return self.max_lag_s <= KEEP_UP_LAG_S

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(achieved_rate=round(self.achieved_rate, 1), kept_up=self.kept_up)
        return out


@dataclass
class PublisherConfig:
    host: str
    port: int
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    qos: int = 1
    connections: int = 4
    per_device: bool = False
    client_id: str = "twin-sim"
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None


class _Link:
    """One MQTT connection whose network loop the publisher drives."""

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self.last: mqtt.MQTTMessageInfo | None = None


class Publisher:
    def __init__(
        self,
        config: PublisherConfig,
        stop: threading.Event | None = None,
        *,
        faults: Sequence[Fault] = (),
        start_ms: int | None = None,
        source: TrafficSource | None = None,
        metrics: PublishMetrics | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.stop = stop or threading.Event()
        self.start_ms = start_ms if start_ms is not None else time.time_ns() // 1_000_000
        self.traffic: Traffic | None = None
        self._scheduled_s = 0.0
        if source is None:  # the simulated fleet, on its schedule
            self.traffic = source = Traffic(config.traffic, self.start_ms, faults)
            self._scheduled_s = config.traffic.duration_s
        self.source: TrafficSource = source
        self.fleet = self.traffic.fleet if self.traffic is not None else []
        devices = len(self.source.fleet)
        count = devices if config.per_device else max(1, config.connections)
        self.report = PublishReport(
            requested_rate=config.traffic.rate if self.traffic is not None else 0.0,
            start_ms=self.start_ms,
            devices=devices,
            connections=min(count, devices),
            faults=len(faults),
        )
        self._links: list[_Link] = []
        self._selector = selectors.DefaultSelector()

    def _connect(self, index: int) -> _Link:
        c = self.config
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{c.client_id}-{index}",
            protocol=mqtt.MQTTv311,
        )
        if c.username:
            client.username_pw_set(c.username, c.password)
        if c.tls:
            client.tls_set(ca_certs=c.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        client.max_inflight_messages_set(10_000)
        client.max_queued_messages_set(0)
        try:
            client.connect(c.host, c.port, keepalive=60)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot reach the MQTT broker at {c.host}:{c.port}: {exc}"
            ) from None
        link = _Link(client)
        sock = client.socket()
        if sock is not None:
            self._selector.register(sock, selectors.EVENT_READ, link)
        return link

    def _service(self, timeout: float = 0.0) -> None:
        """Read acknowledgements, write what is pending, keep connections alive."""
        for key, _ in self._selector.select(timeout):
            key.data.client.loop_read()
        for link in self._links:
            if link.client.want_write():
                link.client.loop_write()

    def _send(self, out: Outgoing) -> None:
        link = self._links[out.device % len(self._links)]
        link.last = link.client.publish(
            out.topic, out.payload, qos=self.config.qos, retain=out.retain
        )

    def run(self, progress: Callable[[PublishReport], None] | None = None) -> PublishReport:
        report = self.report
        self._links = [self._connect(i) for i in range(report.connections)]
        bad = Counter[str]()
        try:
            for out in self.source.attributes():  # metadata first, retained like devices do
                self._send(out)
            self._service()
            started = time.monotonic()
            report.start_ms = time.time_ns() // 1_000_000
            self.source.rebase(report.start_ms)  # device time starts now, after connecting
            next_misc = next_progress = started + 1.0
            metrics = self.metrics
            if metrics is not None:
                metrics.start(report)
            for sent, out in enumerate(self.source.messages(), start=1):
                if self.stop.is_set():
                    break
                now = time.monotonic()
                ahead = out.due_s - (now - started)
                if ahead > 0.002:
                    self._service(min(ahead, 0.01))
                    now = time.monotonic()
                    ahead = out.due_s - (now - started)
                    if ahead > 0:
                        time.sleep(ahead)
                elif -ahead > report.max_lag_s:
                    report.max_lag_s = -ahead
                self._send(out)
                report.messages += 1
                report.readings += out.readings
                if out.kind == "event":
                    report.events += 1
                if out.bad_reason:
                    bad[out.bad_reason] += 1
                    report.bad_messages += 1
                if sent % 200 == 0:
                    self._service()
                if now >= next_misc:
                    next_misc = now + 1.0
                    for link in self._links:
                        link.client.loop_misc()
                    if metrics is not None:
                        metrics.update(report, -ahead, bad)
                if progress is not None and now >= next_progress:
                    next_progress = now + 1.0
                    report.seconds = now - started
                    progress(report)
            elapsed = time.monotonic() - started
            report.seconds = elapsed if self.stop.is_set() else max(elapsed, self._scheduled_s)
            report.bad_by_reason = dict(bad)
            if metrics is not None:
                metrics.update(report, 0.0, bad)
            self._drain()
        finally:
            for link in self._links:
                link.client.disconnect()
            self._selector.close()
        return report

    def _drain(self, timeout_s: float = 30.0) -> None:
        """Wait for the broker to acknowledge everything (QoS 1)."""
        if self.config.qos == 0:
            return
        deadline = time.monotonic() + timeout_s
        waiting = [link for link in self._links if link.last is not None]
        while waiting and time.monotonic() < deadline:
            self._service(0.01)
            waiting = [link for link in waiting if not link.last.is_published()]  # type: ignore[union-attr]
        self.report.unacknowledged_connections = len(waiting)
