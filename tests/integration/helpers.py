"""Helpers for integration tests: a real MQTT publisher, queries, scrapes and polling."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from storage.database import psycopg_url

T = TypeVar("T")


def q(url: str, sql: str, *args: object) -> list[tuple]:
    """The rows of one query, on a connection of its own."""
    with psycopg.connect(psycopg_url(url)) as conn:
        return conn.execute(sql, args).fetchall()


def count_rows(url: str, device: str) -> int:
    return q(url, "SELECT count(*) FROM telemetry WHERE device_id = %s", device)[0][0]


def exposition(port: int) -> str:
    """What a process serves on ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def scrape(name: str, *ports: int) -> float:
    """A metric summed over its labels and over the processes serving ``ports``."""
    total = 0.0
    for port in ports:
        for line in exposition(port).splitlines():
            if line.startswith((name + " ", name + "{")):
                total += float(line.rsplit(" ", 1)[1])
    return total


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


class Receiver:
    """An HTTP endpoint that records requests; it can fail the first N or hang."""

    def __init__(self, fail_first: int = 0, hang_s: float = 0.0) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.times: list[float] = []
        """Wall-clock time (epoch seconds) each request arrived."""
        self.fail_first = fail_first
        self.hang_s = hang_s
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.times.append(time.time())
                outer.requests.append((dict(self.headers.items()), body))
                if outer.hang_s:
                    time.sleep(outer.hang_s)
                failing = len(outer.requests) <= outer.fail_first
                try:
                    self.send_response(500 if failing else 200)
                    self.end_headers()
                    self.wfile.write(b"nope" if failing else b"ok")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a hanging receiver)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
