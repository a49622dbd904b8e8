"""A deterministic publisher that knows every reading the broker acknowledged.

Each device sends one reading per message, ``seq`` 0, 1, 2 ... and ``ts`` derived from it, at a
fixed total rate, over MQTT 5 QoS 1 with a persistent session: a broker restart is ridden out by
paho's reconnect, and its in-flight messages are sent again. A reading counts as acknowledged
when its PUBACK comes back with a success code; the suite then demands exactly those rows.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


@dataclass
class Published:
    acked: set[tuple[str, int, int]] = field(default_factory=set)
    """(device, ts_ms, seq) of every reading the broker acknowledged."""
    sent: int = 0
    refused: int = 0
    """PUBACKs with a failure code (the broker did not take the message)."""
    unmatched: int = 0
    """PUBACKs saying no subscriber matched: the broker acknowledged and dropped them."""
    malformed: int = 0


class ChaosPublisher:
    def __init__(self, url: str, prefix: str, devices: int, rate: float, t0_ms: int) -> None:
        parts = urlsplit(url)
        self.prefix, self.devices, self.rate, self.t0 = prefix, devices, rate, t0_ms
        self.result = Published()
        self._pending: dict[int, tuple[str, int, int]] = {}
        self._early: dict[int, int] = {}
        self._lock = threading.Lock()
        self._seq = [0] * devices
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"{prefix.strip('/')}-chaos-pub",
                                  protocol=mqtt.MQTTv5)  # fmt: skip
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.2, 2)
        self.client.on_publish = self._on_publish
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, clean_start=False,
                            properties=props)  # fmt: skip
        self.client.loop_start()

    def device(self, i: int) -> str:
        return f"{self.prefix.strip('/')}-d{i:03d}"

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        code = getattr(reason_code, "value", 0)
        with self._lock:
            reading = self._pending.pop(mid, None)
            if reading is None:  # the PUBACK came before publish() returned
                self._early[mid] = code
                return
        self._count(reading, code)

    def _count(self, reading: tuple[str, int, int], code: int) -> None:
        if code >= 0x80:
            self.result.refused += 1
            return
        if code == 16:
            self.result.unmatched += 1
        self.result.acked.add(reading)

    def publish_one(self, i: int) -> None:
        seq = self._seq[i]
        self._seq[i] += 1
        ts = self.t0 + int(seq * self.devices * 1000 / self.rate) + i  # in step with the clock
        values = {"temperature_c": 40.0 + (seq % 7), "load_pct": 50.0 + (seq % 11)}
        body = json.dumps({"ts": ts, "seq": seq, "values": values})
        topic = f"{self.prefix}devices/{self.device(i)}/telemetry"
        reading = (self.device(i), ts, seq)
        info = self.client.publish(topic, body.encode(), qos=1)  # never under our lock
        with self._lock:
            code = self._early.pop(info.mid, None)
            if code is None:
                self._pending[info.mid] = reading
        if code is not None:
            self._count(reading, code)
        self.result.sent += 1

    def poison(self, topic: str, payload: bytes) -> None:
        self.client.publish(f"{self.prefix}{topic}", payload, qos=1)
        self.result.malformed += 1

    def run(self, seconds: float, between: object = None) -> None:
        """Publish for ``seconds`` at the rate, round-robin over the devices (blocking)."""
        interval = 1.0 / self.rate
        start = time.monotonic()
        n = 0
        while not self._stop.is_set():
            due = start + n * interval
            now = time.monotonic()
            if now - start >= seconds:
                break
            if due > now:
                time.sleep(min(due - now, 0.01))
                continue
            self.publish_one(n % self.devices)
            n += 1

    def start(self, seconds: float) -> None:
        self._thread = threading.Thread(target=self.run, args=(seconds,), daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def settle(self, timeout_s: float = 60.0) -> None:
        """Wait until every message sent has its PUBACK (or the time is up)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending:
                    return
            time.sleep(0.1)

    def close(self) -> None:
        self._stop.set()
        self.join()
        self.client.disconnect()
        self.client.loop_stop()
