"""Helpers for integration tests: a real MQTT publisher and polling."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

T = TypeVar("T")


class Publisher:
    def __init__(self, mqtt_url: str, prefix: str) -> None:
        parts = urlsplit(mqtt_url)
        self.prefix = prefix
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            protocol=mqtt.MQTTv311,
            client_id=f"{prefix.strip('/')}-pub",
        )
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()
        self._last: Any = None

    def send(
        self,
        device: str,
        channel: str,
        payload: Any,
        *,
        retain: bool = False,
        raw_topic: str | None = None,
    ) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        topic = raw_topic or f"{self.prefix}devices/{device}/{channel}"
        self._last = self.client.publish(topic, body, qos=1, retain=retain)

    def flush(self) -> None:
        if self._last is not None:
            self._last.wait_for_publish(timeout=10)

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def wait_until(probe: Callable[[], T], timeout_s: float = 20.0, interval_s: float = 0.1) -> T:
    deadline = time.monotonic() + timeout_s
    value = probe()
    while not value and time.monotonic() < deadline:
        time.sleep(interval_s)
        value = probe()
    return value
