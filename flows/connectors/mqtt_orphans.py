"""Orphaned MQTT sessions: a session an earlier engine left at the broker (under another
client id, or of a process that is gone) may still hold messages nothing has stored; it is
read to the end through the flow, then ended."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import TYPE_CHECKING

from flows.connectors.ledger import AckWindow
from flows.connectors.mqtt_broker import tls_context
from flows.connectors.mqtt_codec import Packet
from twin.records import RawMessage
from twin.topics import TopicRouter

if TYPE_CHECKING:
    from flows.connectors.mqtt_source import _MqttPartition

log = logging.getLogger(__name__)

DRAIN_IDLE_S = 3.0
"""An orphaned session is drained once it has delivered nothing for this long."""


class OrphanDrain:
    """An orphaned session read to the end: its messages go through the flow like any other
    (acknowledged after commit), then the session is ended at the broker."""

    def __init__(self, partition: _MqttPartition, client_id: str) -> None:
        source = partition._source
        self.client_id = client_id
        self.window = AckWindow(source.ledger)
        self.present: bool | None = None
        self.last = time.monotonic()
        self.done = False
        self._partition = partition
        self.conn = source.connection(
            client_id, partition._codec, greeting=self._unsubscribe, on_connack=self._connected
        )

    def _unsubscribe(self) -> bytes:
        """Stop new messages for the orphan at once (the live session subscribed first, so
        nothing published meanwhile is lost); what it queued is still delivered."""
        source = self._partition._source
        topics = TopicRouter(source.prefix)
        groups = {g for g in (source.group, "twinstream") if g}
        patterns = [topics.subscription(), topics.attributes_subscription()]
        patterns += [topics.shared_subscription(g) for g in sorted(groups)]
        return self._partition._codec.unsubscribe(1, patterns)

    def _connected(self, present: bool) -> None:
        self.present = present
        self.last = time.monotonic()
        log.warning(
            "draining the orphaned MQTT session %s (%s)",
            self.client_id,
            "it held a session: its readings are taken now" if present else "nothing was left",
        )

    def deliver(self, packet: Packet) -> None:
        _, topic, payload, packet_id, dup, _ = packet
        self.last = time.monotonic()
        ticket = self.window.take(packet_id, dup, hash((topic, payload)))
        if ticket is not None:
            self._partition._taken.append(
                RawMessage(topic, payload, time.time_ns() // 1_000_000, ticket)
            )

    def poll(self, want: int) -> None:
        conn = self.conn
        if conn.up:
            acks = self.window.acks()
            if acks:
                conn.send(self._partition._codec.puback(acks))
        conn.poll(self.deliver, want)
        idle = time.monotonic() - self.last > DRAIN_IDLE_S
        if self.present is not None and idle and not len(self.window):
            self.finish()

    def finish(self) -> None:
        self.conn.stop()
        self.done = True
        threading.Thread(target=self._end_session, daemon=True, name="mqtt-end-session").start()

    def _end_session(self) -> None:
        """Connect once more with a clean start and no expiry: the broker discards the session."""
        source = self._partition._source
        endpoint = source.endpoint
        codec = self._partition._codec
        try:
            with socket.create_connection((endpoint.host, endpoint.port), timeout=10) as raw:
                context = tls_context(endpoint)
                sock = context.wrap_socket(raw, server_hostname=endpoint.host) if context else raw
                sock.sendall(codec.connect(self.client_id, clean_start=True, keep_alive=10,
                                           session_expiry_s=0, username=endpoint.username,
                                           password=endpoint.password))  # fmt: skip
                sock.recv(64)
                sock.sendall(codec.disconnect())
        except OSError as exc:
            log.warning("could not end the drained MQTT session %s: %s", self.client_id, exc)
            return
        log.warning("the orphaned MQTT session %s is drained and ended", self.client_id)
        source.on_drained(self.client_id)
