"""One MQTT connection, driven from the worker thread that consumes its messages.

``poll`` reads what the socket holds in large chunks, decodes every complete packet (MQTT 5
through the ``mqtt5`` Rust codec, or MQTT 3.1.1), answers keep-alive, and hands PUBLISH packets
to the caller; ``send`` queues bytes that leave in one write per poll. Nothing here blocks the
worker: the TCP connect, the TLS handshake and the CONNECT packet happen on a short-lived helper
thread, and reconnects back off from ``min_delay_s`` to ``max_delay_s``.

``greeting`` (the caller's SUBSCRIBE packets) leaves with CONNECT, without waiting for
CONNACK, so a restarted broker routes to the subscriptions again as soon as the engine is back.
The caller learns the session's fate through ``on_connack(session_present)`` and ``on_lost()``;
the connection knows nothing of acknowledgements.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from flows.connectors.mqtt_codec import (
    CONNACK,
    DISCONNECT,
    PINGRESP,
    PUBLISH,
    SUBACK,
    Codec,
    MalformedPacket,
    Packet,
)
from twin import defaults

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Credentials:
    client_id: str
    username: str | None = None
    password: str | None = None
    clean_start: bool = False
    session_expiry_s: int = defaults.MQTT_SESSION_EXPIRY_S
    keep_alive_s: int = 30


class WireConnection:
    """Connect, read, write, keep alive and reconnect, all from ``poll``."""

    def __init__(
        self,
        host: str,
        port: int,
        codec: Codec,
        credentials: Credentials,
        *,
        tls: ssl.SSLContext | None = None,
        greeting: Callable[[], bytes] = lambda: b"",
        on_connack: Callable[[bool], None] = lambda present: None,
        on_refused: Callable[[int], None] = lambda code: None,
        on_lost: Callable[[], None] = lambda: None,
        on_suback: Callable[[int, list[int]], None] = lambda pid, codes: None,
        min_delay_s: float = 0.5,
        max_delay_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host, self.port = host, port
        self.codec = codec
        self.credentials = credentials
        self._tls = tls
        self._greeting = greeting
        self._on_connack = on_connack
        self._on_refused = on_refused
        self._on_lost = on_lost
        self._on_suback = on_suback
        self._min_delay, self._max_delay = min_delay_s, max_delay_s
        self._delay = min_delay_s
        self._clock = clock
        self._sock: socket.socket | None = None
        self._connecting: threading.Thread | None = None
        self._attempt: socket.socket | None = None
        self._attempt_error: BaseException | None = None
        self._next_attempt = 0.0
        self._failures = 0
        self._in = b""
        self._pos = 0
        self._out = bytearray()
        self._last_sent = 0.0
        self._ping_sent = 0.0
        self.up = False
        """The broker accepted CONNECT (CONNACK 0) on the open socket."""
        self.stopped = False
        self.connects = 0

    # -- the worker's calls --------------------------------------------------------------

    def poll(self, deliver: Callable[[Packet], None], want: int) -> int:
        """Read up to about ``want`` PUBLISH packets into ``deliver``; returns how many."""
        if self.stopped:
            return 0
        if self._sock is None:
            self._reconnect_if_due()
            if self._sock is None:
                return 0
        got = 0
        try:
            got = self._read(deliver, want)
            self._keep_alive()
            self.flush()
        except (OSError, MalformedPacket) as exc:
            self._drop(f"{type(exc).__name__}: {exc}")
        return got

    def send(self, data: bytes) -> None:
        self._out += data

    def flush(self) -> None:
        """Write what the kernel takes now; the rest waits for the next poll."""
        sock = self._sock
        out = self._out
        if sock is None or not out:
            return
        while out:
            try:
                sent = sock.send(out)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return
            del out[:sent]
            self._last_sent = self._clock()

    def drain_output(self, timeout_s: float = 2.0) -> None:
        """Write everything queued, waiting up to ``timeout_s`` (used at stop)."""
        deadline = self._clock() + timeout_s
        try:
            while self._out and self._sock is not None and self._clock() < deadline:
                self.flush()
                if self._out:
                    time.sleep(0.002)
        except OSError as exc:
            self._drop(f"{type(exc).__name__}: {exc}")

    def stop(self) -> None:
        """Send DISCONNECT (the persistent session keeps what follows) and close."""
        if self.stopped:
            return
        if self._connecting is not None:
            self._connecting.join(timeout=10)
            self._adopt_attempt()
        if self._sock is not None and self.up:
            self.send(self.codec.disconnect())
            self.drain_output()
        self.stopped = True
        self._close()

    # -- reading -------------------------------------------------------------------------

    def _read(self, deliver: Callable[[Packet], None], want: int) -> int:
        sock = self._sock
        assert sock is not None
        got = 0
        decode = self.codec.decode
        while got < want:
            try:
                chunk = sock.recv(READ_CHUNK)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            if not chunk:
                raise ConnectionResetError("the broker closed the connection")
            data = self._in[self._pos :] + chunk if self._pos < len(self._in) else chunk
            packets, used = decode(data, 0)
            self._in, self._pos = data, used
            for packet in packets:
                kind = packet[0]
                if kind == PUBLISH:
                    deliver(packet)
                    got += 1
                else:
                    self._control(packet)
        return got

    def _control(self, packet: Packet) -> None:
        kind = packet[0]
        if kind == CONNACK:
            present, code = packet[1], packet[2]
            if code != 0:
                self._on_refused(code)
                raise ConnectionRefusedError(f"CONNACK {code}")
            self.up = True
            self.connects += 1
            self._delay = self._min_delay
            self._failures = 0
            self._on_connack(bool(present))
        elif kind == PINGRESP:
            self._ping_sent = 0.0
        elif kind == DISCONNECT:
            raise ConnectionResetError(f"the broker sent DISCONNECT ({packet[1]})")
        elif kind == SUBACK:
            self._on_suback(packet[1], packet[2])

    def _keep_alive(self) -> None:
        keep = self.credentials.keep_alive_s
        now = self._clock()
        if self._ping_sent and now - self._ping_sent > keep:
            raise TimeoutError(f"no PINGRESP within {keep} s")
        if not self._ping_sent and now - self._last_sent >= keep / 2:
            self.send(self.codec.pingreq())
            self._ping_sent = now

    # -- connecting ----------------------------------------------------------------------

    def _reconnect_if_due(self) -> None:
        worker = self._connecting
        if worker is not None:
            if not worker.is_alive():
                self._adopt_attempt()
            return
        if self._clock() < self._next_attempt:
            return
        self._attempt, self._attempt_error = None, None
        self._connecting = threading.Thread(target=self._connect, name="mqtt-connect", daemon=True)
        self._connecting.start()

    def _adopt_attempt(self) -> None:
        self._connecting = None
        sock, error = self._attempt, self._attempt_error
        self._attempt = self._attempt_error = None
        if sock is None:
            self._failures += 1
            if self._failures == 1 or self._failures % 20 == 0:
                log.warning(
                    "MQTT connection to %s:%d failed (%s); retrying in %.1fs",
                    self.host,
                    self.port,
                    error,
                    self._delay,
                )
            self._schedule()
            return
        self._sock = sock
        self._in, self._pos = b"", 0
        self._ping_sent = 0.0
        self._last_sent = self._clock()

    def _connect(self) -> None:
        """Helper thread: TCP, TLS, CONNECT. Never touches the worker's state but two fields."""
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection((self.host, self.port), timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            c = self.credentials
            hello = self.codec.connect(
                c.client_id,
                clean_start=c.clean_start,
                keep_alive=c.keep_alive_s,
                session_expiry_s=c.session_expiry_s,
                username=c.username,
                password=c.password,
            )
            sock.sendall(hello + self._greeting())  # SUBSCRIBE need not wait for CONNACK
            sock.setblocking(False)
            self._attempt = sock
        except (OSError, ValueError) as exc:
            self._attempt_error = exc
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()

    def _schedule(self) -> None:
        self._next_attempt = self._clock() + self._delay
        self._delay = min(self._delay * 2, self._max_delay)

    def _drop(self, why: str) -> None:
        was_up = self.up
        self._close()
        if not self.stopped:
            if was_up:
                log.warning("MQTT connection to %s:%d lost (%s); reconnecting",
                            self.host, self.port, why)  # fmt: skip
            self._schedule()
            self._on_lost()

    def _close(self) -> None:
        self.up = False
        sock, self._sock = self._sock, None
        self._out = bytearray()
        self._in, self._pos = b"", 0
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
