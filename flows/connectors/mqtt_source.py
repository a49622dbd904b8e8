"""A Bytewax source that reads device topics from an MQTT broker and acknowledges after commit.

* One connection per engine process, read by worker 0 (the workers are threads of one
  process, so more connections would add no parallelism; the twin step's key exchange spreads
  the devices over the workers anyway). The socket is read in 1 MiB chunks and MQTT 5 packets
  are decoded by ``mqtt5`` (Rust); brokers that refuse MQTT 5 (amqtt, the demo's embedded
  broker) get MQTT 3.1.1, and the log says so.
* QoS 1 and a persistent session (clean start off, session expiry), so messages published
  while the engine is down wait at the broker. A message is acknowledged only once everything
  it produced is committed in PostgreSQL (``flows.connectors.ledger``): a crash, a kill or a lost
  connection leaves it unacknowledged, and the broker delivers it again.
* Subscriptions: a plain ``{prefix}devices/#`` for a process that reads alone, which survives a
  broker restart (Mosquitto restores it from its persistence file at once); with a group (a
  cluster, or engines that share the topics), ``$share/{group}/{prefix}devices/#``, plus, on
  process 0, a plain ``{prefix}devices/+/attributes`` for the retained device metadata that
  shared subscriptions never deliver (MQTT 5, 4.8.2). Subscription identifiers tell the two
  apart, so each attributes message is taken once. After every (re)connect the subscriptions
  are sent with CONNECT, without waiting for CONNACK: a restarted broker routes to them again
  as soon as the engine is back.
* ``next_batch`` never blocks: it reads what the socket holds (up to one batch), sends the
  acknowledgements that are due, and returns. Nothing is read while the flow is busy
  downstream, and the broker holds at most the session's receive maximum unacknowledged, so a
  slow flow pushes back on the broker, not on memory.
* On stop (SIGTERM/SIGINT via ``stop``) no new message is taken; the messages already read
  go through the flow, the source waits until they are committed and acknowledged (or until
  ``abandon``), sends DISCONNECT and ends, so the sinks flush and close.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.inputs import DynamicSource, StatelessSourcePartition

from flows.connectors.ledger import AckWindow, CommitLedger
from flows.connectors.mqtt_broker import probe_protocol, tls_context
from flows.connectors.mqtt_codec import (
    RECEIVE_MAXIMUM,
    Codec,
    Packet,
    V5Codec,
    V311Codec,
)
from flows.connectors.mqtt_orphans import OrphanDrain
from flows.connectors.mqtt_wire import Credentials, WireConnection
from flows.runtime.settings import MqttEndpoint
from twin import defaults
from twin.records import RawMessage
from twin.topics import TopicRouter

log = logging.getLogger(__name__)

SHARED_SUBSCRIPTION = 1
ATTRIBUTES_SUBSCRIPTION = 2
PLAIN_SUBSCRIPTION = 3
"""Subscription identifiers (MQTT 5): the shared catch-all, process 0's plain attributes
subscription, and the plain catch-all of a process that reads alone."""


class _MqttPartition(StatelessSourcePartition[RawMessage]):
    def __init__(self, source: MqttSource, worker_index: int) -> None:
        self._source = source
        self._taken: list[RawMessage] = []
        self._awake: datetime | None = None
        self._idle = timedelta(milliseconds=source.idle_poll_ms)
        self._linger_ms = source.linger_ms
        self._reading = worker_index % source.workers_per_process == 0  # first of its process
        self._stopping = False
        self._drain_deadline = 0.0
        if not self._reading:
            self._conn: WireConnection | None = None
            return
        version = source.protocol()
        self._codec: Codec = V5Codec() if version == "5" else V311Codec()
        self._v5 = version == "5"
        self._window = AckWindow(source.ledger)
        self._wrapped_seen = 0
        self._subs = source.subscriptions(self._v5)
        self._shared = any(sid == SHARED_SUBSCRIPTION for _, sid in self._subs)
        self._conn = source.connection(
            source.client_id,
            self._codec,
            greeting=self._subscribe_packets,
            on_connack=self._connected,
            on_refused=self._refused,
            on_lost=self._lost,
            on_suback=self._suback,
        )
        source.windows.append(self._window)
        source.connections.append(self._conn)
        self._drains = [OrphanDrain(self, c) for c in source.orphans] if worker_index == 0 else []
        for drain in self._drains:
            source.windows.append(drain.window)
        if self._drains:
            source.draining.set()

    # -- connection events ---------------------------------------------------------------

    def _subscribe_packets(self) -> bytes:
        return b"".join(
            self._codec.subscribe(i, pattern, sid if self._v5 else None)
            for i, (pattern, sid) in enumerate(self._subs, start=1)
        )

    def _connected(self, session_present: bool) -> None:
        source = self._source
        lost = 0 if session_present else self._window.session_lost()
        log.info(
            "MQTT connected to %s:%d as %s (MQTT %s, session %s), subscribed to %s",
            source.endpoint.host,
            source.endpoint.port,
            source.client_id,
            self._codec.version,
            "resumed" if session_present else "new",
            ", ".join(p for p, _ in self._subs),
        )
        if lost:
            log.warning(
                "the broker had no session for %s: %d messages read before it are stored but "
                "cannot be acknowledged (the broker lost its session state)",
                source.client_id,
                lost,
            )
        source.on_state("connected")

    def _wrapped_note(self) -> None:
        if not self._wrapped_seen:
            log.warning(
                "the broker sent more messages than the receive maximum (%d unacknowledged): "
                "its packet identifiers wrapped around. All are taken; Mosquitto before 2.0.13 "
                "delivers such messages again after a reconnect (duplicates the store absorbs). "
                "Upgrade the broker, or lower TWIN_BATCH_SIZE to stay further behind the limit",
                RECEIVE_MAXIMUM,
            )
        self._wrapped_seen = self._window.wrapped

    def _refused(self, code: int) -> None:
        log.warning("MQTT %s:%d refused the connection of %s: reason %d",
                    self._source.endpoint.host, self._source.endpoint.port,
                    self._source.client_id, code)  # fmt: skip
        self._source.on_state("refused")

    def _lost(self) -> None:
        self._source.subscribed.clear()
        self._source.on_state("disconnected")

    def _suback(self, packet_id: int, codes: list[int]) -> None:
        pattern = self._subs[packet_id - 1][0] if 0 < packet_id <= len(self._subs) else "?"
        failed = [c for c in codes if c >= 0x80]
        if failed:
            log.error("MQTT subscription to %s refused: reason %s", pattern, failed)
        elif packet_id == len(self._subs):
            log.info("MQTT subscribed as %s", self._source.client_id)
            self._source.subscribed.set()

    # -- messages ------------------------------------------------------------------------

    def _deliver(self, packet: Packet) -> None:
        _, topic, payload, packet_id, dup, sub_ids = packet
        window = self._window
        if (
            self._shared
            and sub_ids == [SHARED_SUBSCRIPTION]
            and self._source.reads_attributes
            and topic.endswith("/attributes")
        ):
            window.take_done(packet_id)  # the plain attributes subscription delivers it too
            return
        ticket = window.take(packet_id, dup, hash((topic, payload)))
        if ticket is None:
            return  # a redelivery of a message still in the flow
        self._taken.append(RawMessage(topic, payload, time.time_ns() // 1_000_000, ticket))

    def _discard(self, packet: Packet) -> None:
        """While stopping: not taken, not acknowledged; the session delivers it next time."""

    def next_batch(self) -> list[RawMessage]:
        source = self._source
        source.polled = time.monotonic()  # the worker is alive (readiness)
        conn = self._conn
        if conn is None:  # only the first worker of each process reads
            if source.stop.is_set():
                raise StopIteration
            self._awake = datetime.now(UTC) + timedelta(milliseconds=200)
            return []
        taken = self._taken
        batch_size = source.batch_size
        if not self._stopping and source.stop.is_set():
            self._stopping = True
            self._drain_deadline = time.monotonic() + source.drain_timeout_s
        acks = self._window.acks() if conn.up else []  # kept in the window until connected
        if acks:
            conn.send(self._codec.puback(acks))
        if self._window.wrapped != self._wrapped_seen:
            self._wrapped_note()
        if self._stopping:
            conn.poll(self._discard, 1 << 30)  # keep-alive and acknowledgements only
            if not taken and (
                not len(self._window)
                or source.abandon.is_set()
                or time.monotonic() > self._drain_deadline
                or not conn.up
            ):
                self._finish(conn)
                raise StopIteration
        else:
            want = batch_size - len(taken)
            if want > 0:
                conn.poll(self._deliver, want)
            elif acks:
                conn.flush()
            if self._drains:
                self._poll_drains(batch_size)
        n = len(taken)
        source.buffered = n
        if n and not self._stopping and n < batch_size and self._linger_ms:
            due = taken[0].received_ms + self._linger_ms
            now_ms = time.time_ns() // 1_000_000
            if now_ms < due:  # let a small batch grow a little: fewer, larger writes
                self._awake = datetime.now(UTC) + timedelta(milliseconds=due - now_ms)
                return []
        if n:
            batch = taken[:batch_size]
            del taken[:batch_size]
            self._awake = None
            source.on_batch(len(batch))
            return batch
        wait = self._idle if not self._stopping else timedelta(milliseconds=5)
        if len(self._window) and not self._stopping:
            wait = min(wait, timedelta(milliseconds=5))  # acknowledgements are coming
        self._awake = datetime.now(UTC) + wait
        return []

    def _poll_drains(self, batch_size: int) -> None:
        if not self._source.subscribed.is_set():
            return  # the orphans unsubscribe only once the live session is subscribed
        for drain in self._drains:
            want = batch_size - len(self._taken)
            if want <= 0:
                break
            drain.poll(want)
        self._drains = [d for d in self._drains if not d.done]
        if not self._drains:
            self._source.draining.clear()

    def _finish(self, conn: WireConnection) -> None:
        for drain in self._drains:  # not drained yet: the next start drains them again
            drain.conn.stop()
        left = len(self._window)
        if left:
            log.warning(
                "stopping with %d messages not yet committed: they stay unacknowledged and "
                "the broker delivers them again",
                left,
            )
        conn.stop()

    def next_awake(self) -> datetime | None:
        return self._awake

    def close(self) -> None:
        if self._conn is not None:
            self._conn.stop()


class MqttSource(DynamicSource[RawMessage]):
    """Device topics of one broker: one connection per process, acknowledged after commit."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        *,
        stop: threading.Event,
        ledger: CommitLedger,
        abandon: threading.Event | None = None,
        prefix: str = "",
        group: str = "",
        client_id: str = "twinstream",
        reads_attributes: bool = True,
        workers_per_process: int = 1,
        batch_size: int = defaults.BATCH_SIZE,
        linger_ms: int = defaults.LINGER_MS,
        idle_poll_ms: int = 20,
        session_expiry_s: int = defaults.MQTT_SESSION_EXPIRY_S,
        drain_timeout_s: float = 30.0,
        on_batch: Callable[[int], None] | None = None,
        on_state: Callable[[str], None] | None = None,
        protocol: str | None = None,
        orphans: list[str] | None = None,
        on_drained: Callable[[str], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.orphans = list(orphans or [])
        """Client ids of persistent sessions no longer in use that may hold readings: drained
        (read to the end through the flow, then ended at the broker) beside the live one."""
        self.on_drained = on_drained or (lambda client_id: None)
        self.stop = stop
        self.ledger = ledger
        self.abandon = abandon or threading.Event()
        self.prefix = prefix
        self.group = group
        self.client_id = client_id
        self.reads_attributes = reads_attributes
        """With a group: this process also holds the plain attributes subscription."""
        self.workers_per_process = workers_per_process
        self.batch_size = batch_size
        self.linger_ms = linger_ms
        self.idle_poll_ms = idle_poll_ms
        self.session_expiry_s = session_expiry_s
        self.drain_timeout_s = drain_timeout_s
        self.on_batch = on_batch or (lambda taken: None)
        self._notify_state = on_state or (lambda state: None)
        self.connections: list[WireConnection] = []
        self.draining = threading.Event()
        """Set while orphaned sessions are drained: a reading may then come through both the
        live session and an orphan (published between the one's SUBSCRIBE and the other's
        UNSUBSCRIBE), and the twins watch for it (``flows.dataflow.DeviceTwin``)."""
        self.subscribed = threading.Event()
        """Set while the broker has confirmed every subscription of this process."""
        self.windows: list[AckWindow] = []
        self.polled = 0.0
        """When a worker last asked for messages (``time.monotonic``)."""
        self.buffered = 0
        """Messages read from the broker and not yet handed on."""
        self.state = "starting"
        self._protocol = protocol
        self._probe_lock = threading.Lock()

    @property
    def unacknowledged(self) -> int:
        """Messages read and not yet acknowledged (in the flow, or committed and due)."""
        return sum(len(w) for w in self.windows)

    @property
    def redelivered(self) -> int:
        return sum(w.redelivered for w in self.windows)

    def connection(self, client_id: str, codec: Codec, **events: Any) -> WireConnection:
        """A connection to this source's broker as ``client_id`` (the live one, or an orphan's)."""
        endpoint = self.endpoint
        credentials = Credentials(
            client_id=client_id,
            username=endpoint.username,
            password=endpoint.password,
            session_expiry_s=self.session_expiry_s,
        )
        return WireConnection(
            endpoint.host, endpoint.port, codec, credentials, tls=tls_context(endpoint), **events
        )

    def subscriptions(self, v5: bool) -> list[tuple[str, int]]:
        """``(filter, subscription id)`` pairs for this process."""
        topics = TopicRouter(self.prefix)
        if v5 and self.group:
            subs = [(topics.shared_subscription(self.group), SHARED_SUBSCRIPTION)]
            if self.reads_attributes:
                subs.append((topics.attributes_subscription(), ATTRIBUTES_SUBSCRIPTION))
            return subs
        return [(topics.subscription(), PLAIN_SUBSCRIPTION)]

    def on_state(self, state: str) -> None:
        """The connection's state changed (connected, disconnected, refused)."""
        self.state = state
        self._notify_state(state)

    def protocol(self) -> str:
        with self._probe_lock:
            if self._protocol is None:
                self._protocol = probe_protocol(self.endpoint)
                if self._protocol == "3.1.1":
                    log.warning(
                        "MQTT broker %s:%d refused MQTT 5: using MQTT 3.1.1 with one plain "
                        "subscription (no shared subscriptions)",
                        self.endpoint.host,
                        self.endpoint.port,
                    )
            return self._protocol

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _MqttPartition:
        return _MqttPartition(self, worker_index)
