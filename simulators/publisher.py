"""Publish a simulated fleet over MQTT at a controlled rate.

Readings are spread evenly over the devices; each message carries ``batch`` readings of one
device (``batch=1`` is the single-reading form of the wire contract, larger values use the
batch array form). With ``bad_fraction`` > 0 some messages are replaced by malformed ones of
every class the engine must reject, counted by the dead-letter reason they must get.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulators.fleet import BAD_PAYLOADS, Device, make_fleet

_json = msgspec.json.Encoder().encode


@dataclass
class PublishReport:
    messages: int = 0
    readings: int = 0
    bad_messages: int = 0
    bad_by_reason: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    requested_rate: float = 0.0
    devices: int = 0

    @property
    def achieved_rate(self) -> float:
        return self.readings / self.seconds if self.seconds > 0 else 0.0


@dataclass
class PublisherConfig:
    host: str
    port: int
    devices: int = 100
    rate: float = 1000.0  # readings per second, all devices together
    batch: int = 1
    duration_s: float = 10.0
    seed: int = 1
    prefix: str = ""
    bad_fraction: float = 0.0
    qos: int = 1
    client_id: str = "twin-sim"
    username: str | None = None
    password: str | None = None
    tls: bool = False


class Publisher:
    def __init__(self, config: PublisherConfig, stop: threading.Event | None = None) -> None:
        self.config = config
        self.stop = stop or threading.Event()
        self.fleet: list[Device] = make_fleet(config.devices, config.seed)
        self.report = PublishReport(requested_rate=config.rate, devices=config.devices)
        self._seq = [0] * len(self.fleet)
        self._bad = Counter[str]()
        self._client: mqtt.Client | None = None

    def _connect(self) -> mqtt.Client:
        c = self.config
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=c.client_id, protocol=mqtt.MQTTv311
        )
        if c.username:
            client.username_pw_set(c.username, c.password)
        if c.tls:
            client.tls_set()
        client.max_inflight_messages_set(1000)
        client.connect(c.host, c.port, keepalive=30)
        client.loop_start()
        return client

    def topic(self, device_id: str, channel: str = "telemetry") -> str:
        return f"{self.config.prefix}devices/{device_id}/{channel}"

    def run(self, progress: Callable[[PublishReport], None] | None = None) -> PublishReport:
        c = self.config
        client = self._client = self._connect()
        last_info = None
        for dev in self.fleet:  # device metadata first, retained like real devices do
            last_info = client.publish(
                self.topic(dev.device_id, "attributes"), _json(dev.attributes), qos=1, retain=True
            )
        n = len(self.fleet)
        per_device_interval_s = n / c.rate if c.rate > 0 else 1.0
        start = time.monotonic()
        next_progress = start + 1.0
        due_messages = 0.0
        index = 0
        bad_every = round(1 / c.bad_fraction) if c.bad_fraction > 0 else 0
        bad_cycle = 0
        rate_msgs = c.rate / c.batch
        while not self.stop.is_set():
            now = time.monotonic()
            elapsed = now - start
            if elapsed >= c.duration_s:
                break
            due_messages = rate_msgs * elapsed - self.report.messages
            if due_messages < 1:
                time.sleep(min(0.01, (1 - due_messages) / rate_msgs))
                continue
            for _ in range(min(int(due_messages), 5000)):
                dev_index = index % n
                dev = self.fleet[dev_index]
                index += 1
                self.report.messages += 1
                if bad_every and self.report.messages % bad_every == 0:
                    reason, payload = BAD_PAYLOADS[bad_cycle % len(BAD_PAYLOADS)]
                    bad_cycle += 1
                    self._bad[reason] += 1
                    self.report.bad_messages += 1
                    last_info = client.publish(self.topic(dev.device_id), payload, qos=c.qos)
                    continue
                now_ms = time.time_ns() // 1_000_000
                readings = []
                for k in range(c.batch):
                    self._seq[dev_index] += 1
                    ts = now_ms - int((c.batch - 1 - k) * per_device_interval_s * 1000 / c.batch)
                    readings.append(
                        {
                            "ts": ts,
                            "seq": self._seq[dev_index],
                            "values": dev.step(per_device_interval_s / c.batch),
                        }
                    )
                payload = _json(readings[0] if c.batch == 1 else readings)
                last_info = client.publish(self.topic(dev.device_id), payload, qos=c.qos)
                self.report.readings += c.batch
            if progress is not None and now >= next_progress:
                next_progress = now + 1.0
                self.report.seconds = time.monotonic() - start
                progress(self.report)
        if last_info is not None and c.qos > 0:
            last_info.wait_for_publish(timeout=30)
        self.report.seconds = time.monotonic() - start
        self.report.bad_by_reason = dict(self._bad)
        client.disconnect()
        client.loop_stop()
        return self.report
