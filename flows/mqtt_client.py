"""A paho-mqtt 2 client driven from the thread that consumes its messages.

paho's own network thread (``loop_start``) costs most of the engine's time at high message
rates: every message takes three or four one-byte ``recv`` calls, a wake-up byte on an internal
socket pair and a ``send`` for its acknowledgement, and each of those system calls gives up the
GIL to a worker thread that is busy with the previous batch. Here the worker itself runs the
network loop (``poll``), so nothing contends for the GIL, and the socket is wrapped so that
reads come from one large ``recv`` and acknowledgements leave in one ``send`` per poll.
(paho creates its wake-up socket pair only for ``loop``/``loop_start``, never called here.)

The wrapper relies on paho's ``_create_socket`` hook, stable across paho-mqtt 2.x (the
dependency is bounded to that series). Reconnecting (TCP connect, TLS handshake, CONNECT)
happens on a short-lived helper thread so that ``poll`` never waits on the network.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

log = logging.getLogger(__name__)

READ_CHUNK = 256 * 1024


class BufferedSocket:
    """A socket whose reads come from large chunks and whose writes wait for ``flush``."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._in = b""
        self._pos = 0
        self._out = bytearray()
        self.starved = False
        """True once a read found nothing more on the socket; reset by the caller."""

    def recv(self, n: int) -> bytes:
        data, pos = self._in, self._pos
        if pos >= len(data):
            try:
                data = self._sock.recv(max(n, READ_CHUNK))
            except (BlockingIOError, ssl.SSLWantReadError):
                self.starved = True
                raise
            if not data:
                return data
            self._in, pos = data, 0
        self._pos = pos + n
        return data[pos : pos + n]

    def send(self, data: bytes | bytearray | memoryview) -> int:
        self._out += data
        return len(data)

    def flush(self) -> bool:
        """Send what the kernel takes now; False if the connection is gone."""
        out = self._out
        while out:
            try:
                sent = self._sock.send(out)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return True
            except OSError:
                self._out = bytearray()
                self._shutdown()  # the next read reports the loss to paho
                return False
            del out[:sent]
        return True

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)
        return len(self._in) - self._pos + (inner() if inner is not None else 0)

    def _shutdown(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.flush()
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class DrivenClient(mqtt.Client):
    """A paho client whose network loop is run by ``poll`` in the consuming thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._buffered: BufferedSocket | None = None

    def _create_socket(self) -> Any:
        self._buffered = BufferedSocket(super()._create_socket())
        return self._buffered


class DrivenConnection:
    """Connect, read, acknowledge, keep alive and reconnect, all from ``poll``.

    ``on_connect`` runs inside ``poll`` when the broker accepts (subscribe there);
    ``on_lost`` when the connection drops. Reconnects back off from ``min_delay_s`` to
    ``max_delay_s``.
    """

    def __init__(
        self,
        client: DrivenClient,
        host: str,
        port: int,
        *,
        keepalive: int = 30,
        connect_kwargs: dict[str, Any] | None = None,
        min_delay_s: float = 1.0,
        max_delay_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self._host = host
        self._port = port
        self._keepalive = keepalive
        self._connect_kwargs = connect_kwargs or {}
        self._min_delay = min_delay_s
        self._max_delay = max_delay_s
        self._delay = min_delay_s
        self._clock = clock
        self._next_attempt = 0.0
        self._connecting: threading.Thread | None = None
        self._attempt_failed = False
        self._failures = 0
        self._live = False
        self._stopped = False
        self._configured = False

    @property
    def live(self) -> bool:
        """A socket is open (the broker may not have answered CONNECT yet)."""
        return self._live

    def accepted(self) -> None:
        """Called from on_connect when the broker accepted: reset the back-off."""
        self._delay = self._min_delay
        self._failures = 0

    def poll(self, max_messages: int, delivered: Callable[[], int]) -> None:
        """Read until the socket is empty or ``delivered()`` reaches ``max_messages``."""
        if self._stopped:
            return
        if not self._live:
            self._reconnect_if_due()
            if not self._live:
                return
        client = self.client
        sock = client._buffered
        if sock is None:
            return
        sock.starved = False
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        while not sock.starved and delivered() < max_messages:
            rc = client.loop_read()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            rc = client.loop_write()
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and not sock.flush():
            rc = MQTTErrorCode.MQTT_ERR_CONN_LOST
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            rc = client.loop_misc()  # keepalive pings and the ping timeout
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._lost(rc)

    def _lost(self, rc: MQTTErrorCode) -> None:
        self._live = False
        if self.client._buffered is not None:
            self.client._buffered.flush()
        self._schedule()

    def _schedule(self) -> None:
        self._next_attempt = self._clock() + self._delay
        self._delay = min(self._delay * 2, self._max_delay)

    def _reconnect_if_due(self) -> None:
        worker = self._connecting
        if worker is not None:
            if worker.is_alive():
                return
            self._connecting = None
            if self._attempt_failed:
                self._schedule()
            else:
                self._live = True
            return
        if self._clock() < self._next_attempt:
            return
        self._attempt_failed = False
        self._connecting = threading.Thread(target=self._connect, name="mqtt-connect", daemon=True)
        self._connecting.start()

    def _connect(self) -> None:
        try:
            if not self._configured:
                self._configured = True
                self.client.connect(
                    self._host, self._port, keepalive=self._keepalive, **self._connect_kwargs
                )
            else:
                self.client.reconnect()
            sock = self.client._buffered
            if sock is not None and not sock.flush():  # CONNECT
                raise ConnectionError("connection closed while sending CONNECT")
        except (OSError, ValueError) as exc:
            self._attempt_failed = True
            self._failures += 1
            if self._failures == 1 or self._failures % 20 == 0:
                log.warning(
                    "MQTT connection to %s:%d failed (%s); retrying in %.0fs",
                    self._host,
                    self._port,
                    exc,
                    self._delay,
                )

    def stop(self) -> None:
        """Send DISCONNECT (the persistent session keeps what follows) and close."""
        if self._stopped:
            return
        self._stopped = True
        worker = self._connecting
        if worker is not None:
            worker.join(timeout=10)
            if not self._attempt_failed:
                self._live = True
        if self._live:
            self.client.disconnect()
            self.client.loop_write()
            sock = self.client._buffered
            if sock is not None:
                deadline = self._clock() + 2.0
                while sock._out and self._clock() < deadline and sock.flush():
                    time.sleep(0.005)
            self._live = False
