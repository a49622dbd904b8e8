"""A Bytewax source that reads device topics from an MQTT broker with paho-mqtt 2.

* MQTT 5, QoS 1, persistent session (stable client id per worker, clean start off, session
  expiry), so messages published while the engine is down wait at the broker.
* A shared subscription ``$share/{group}/{prefix}devices/#`` lets several workers or processes
  split the load. Retained messages are never delivered on shared subscriptions (MQTT 5,
  4.8.2), so worker 0 also holds a plain subscription to ``devices/+/attributes`` for the
  retained device metadata. Subscription identifiers tell the two apart, and attributes that
  came only through the shared subscription are skipped: each is taken exactly once.
* Brokers that refuse MQTT 5 (amqtt, the demo's embedded broker) get MQTT 3.1.1 with a single
  subscriber (worker 0); this is logged.
* The worker runs the network loop itself inside ``next_batch`` (``flows.mqtt_client``): it
  reads what the socket holds, up to one batch, and returns at once. Nothing is read while the
  flow is busy downstream, so a slow flow pushes back on the broker (TCP and the session's
  in-flight window) rather than on memory; the broker keeps what was not yet taken.
* On stop (SIGTERM/SIGINT via ``stop``) the client disconnects, the messages already read are
  handed to the flow, and then the source ends, so sinks flush and close. A message is
  acknowledged when it is read, so at most the batch in hand is lost if the *process dies*.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from flows.mqtt_client import DrivenClient, DrivenConnection
from flows.settings import MqttEndpoint
from twin.records import RawMessage

log = logging.getLogger(__name__)

UNSUPPORTED_PROTOCOL = 132
SHARED_SUBSCRIPTION = 1
"""Subscription identifier of the shared catch-all; 2 is worker 0's plain attributes one."""


def probe_protocol(endpoint: MqttEndpoint, timeout_s: float = 5.0) -> int:
    """MQTT 5 unless the broker refuses it.

    The probe sends a bare MQTT 5 CONNECT (no properties, clean start, throwaway client id):
    amqtt answers that with "unsupported protocol version" but silently hangs on one that
    carries properties, so the real connection cannot be the probe.
    """
    answer: dict[str, Any] = {}
    done = threading.Event()

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        answer["rc"] = rc
        done.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"twinstream-probe-{time.time_ns()}",
        protocol=mqtt.MQTTv5,
    )
    if endpoint.username:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        client.tls_set(ca_certs=endpoint.ca_file, cert_reqs=ssl.CERT_REQUIRED)
    client.on_connect = on_connect
    try:
        client.connect_async(endpoint.host, endpoint.port, keepalive=10)
        client.loop_start()
        done.wait(timeout_s)
    finally:
        rc = answer.get("rc")
        if rc is not None and not rc.is_failure:
            client.disconnect()
        client.loop_stop()
    if rc is not None and rc.is_failure and rc.value == UNSUPPORTED_PROTOCOL:
        return mqtt.MQTTv311
    return mqtt.MQTTv5


class MqttConnection:
    """One driven paho client with reconnect, resubscribe and the MQTT 3.1.1 fallback."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        client_id: str,
        subscriptions: Callable[[bool], list[str]],
        on_message: Callable[[RawMessage], None],
        *,
        qos: int = 1,
        session_expiry_s: int = 3600,
        on_state: Callable[[str], None] | None = None,
        protocol: int = mqtt.MQTTv5,
    ) -> None:
        self.endpoint = endpoint
        self.client_id = client_id
        self._subscriptions = subscriptions
        self._deliver = on_message
        self._qos = qos
        self._session_expiry_s = session_expiry_s
        self._on_state = on_state or (lambda state: None)
        self.protocol = protocol
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.connects = 0
        self._driver: DrivenConnection | None = None

    def start(self) -> None:
        v5 = self.protocol == mqtt.MQTTv5
        self._driver = DrivenConnection(
            self._build(self.protocol),
            self.endpoint.host,
            self.endpoint.port,
            keepalive=30,
            connect_kwargs={
                "clean_start": False if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                "properties": self._connect_properties(),
            },
        )

    def poll(self, max_messages: int, delivered: Callable[[], int]) -> None:
        if self._driver is not None:
            self._driver.poll(max_messages, delivered)

    def _connect_properties(self) -> Properties | None:
        if self.protocol != mqtt.MQTTv5:
            return None
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._session_expiry_s
        props.ReceiveMaximum = 65535
        return props

    def _build(self, protocol: int) -> DrivenClient:
        kwargs: dict[str, Any] = {"client_id": self.client_id, "protocol": protocol}
        if protocol == mqtt.MQTTv311:
            kwargs["clean_session"] = False
        client = DrivenClient(CallbackAPIVersion.VERSION2, **kwargs)
        if self.endpoint.username:
            client.username_pw_set(self.endpoint.username, self.endpoint.password)
        if self.endpoint.tls:
            client.tls_set(ca_certs=self.endpoint.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        client.max_inflight_messages_set(1000)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_subscribe = self._handle_subscribe
        return client

    def _handle_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        if rc.is_failure:
            log.warning(
                "MQTT %s refused the connection of %s: %s", self._where(), self.client_id, rc
            )
            self._on_state("refused")
            return
        self.connects += 1
        if self._driver is not None:
            self._driver.accepted()
        self.connected.set()
        self._on_state("connected")
        session = bool(getattr(flags, "session_present", False))
        log.info(
            "MQTT connected to %s as %s (MQTT %s, session %s)",
            self._where(),
            self.client_id,
            "5" if self.protocol == mqtt.MQTTv5 else "3.1.1",
            "resumed" if session else "new",
        )
        subs = self._subscriptions(self.protocol == mqtt.MQTTv5)
        if self.protocol == mqtt.MQTTv5:
            for ident, topic in enumerate(subs, start=1):  # one SUBSCRIBE per identifier
                props = Properties(PacketTypes.SUBSCRIBE)
                props.SubscriptionIdentifier = ident
                client.subscribe(topic, options=SubscribeOptions(qos=self._qos), properties=props)
        else:
            client.subscribe([(s, self._qos) for s in subs])

    def _handle_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, rcs: Any, props: Any
    ) -> None:
        failed = [rc for rc in rcs if getattr(rc, "is_failure", False)]
        if failed:
            log.error("MQTT subscription refused: %s", failed)
        else:
            log.info("MQTT subscribed as %s", self.client_id)
            self.subscribed.set()

    def _handle_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if rc.is_failure:
            self._on_state("disconnected")
            log.warning("MQTT connection to %s lost (%s); reconnecting", self._where(), rc)

    def _handle_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = bytes(msg._topic).decode("utf-8", "replace")
        if topic.endswith("/attributes") and self.protocol == mqtt.MQTTv5:
            ids = getattr(msg.properties, "SubscriptionIdentifier", None)
            if ids == [SHARED_SUBSCRIPTION]:
                return  # worker 0's plain subscription delivers every attributes message
        self._deliver(
            RawMessage(
                topic=topic, payload=bytes(msg.payload), received_ms=time.time_ns() // 1_000_000
            )
        )

    def _where(self) -> str:
        return f"{self.endpoint.host}:{self.endpoint.port}"

    def stop(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.stop()
        self.connected.clear()
        self.subscribed.clear()


class _MqttPartition(StatelessSourcePartition[RawMessage]):
    def __init__(self, source: MqttSource, worker_index: int, protocol: int) -> None:
        self._source = source
        self._worker = worker_index
        self._taken: list[RawMessage] = []
        self._awake: datetime | None = None
        self._stopping = False
        self._idle = timedelta(milliseconds=source.idle_poll_ms)
        self._linger_ms = source.linger_ms
        self._conn = MqttConnection(
            source.endpoint,
            f"{source.client_id}-{worker_index}",
            self._subscriptions,
            self._taken.append,
            qos=source.qos,
            session_expiry_s=source.session_expiry_s,
            on_state=source.on_state,
            protocol=protocol,
        )
        self._reading = protocol == mqtt.MQTTv5 or worker_index == 0
        if self._reading:
            self._conn.start()
            source.connections.append(self._conn)
        else:
            log.info("worker %d idles: MQTT 3.1.1 has no shared subscriptions", worker_index)

    def _subscriptions(self, v5: bool) -> list[str]:
        src = self._source
        topic = f"{src.prefix}devices/#"
        if v5 and src.group:
            subs = [f"$share/{src.group}/{topic}"]
            if self._worker == 0:
                subs.append(f"{src.prefix}devices/+/attributes")  # retained metadata
            return subs
        return [topic]

    def next_batch(self) -> list[RawMessage]:
        self._source.polled = time.monotonic()  # the worker is alive and reading (readiness)
        conn, taken = self._conn, self._taken
        batch_size = self._source.batch_size
        if not self._stopping and self._source.stop.is_set():
            self._stopping = True
            conn.stop()  # no new messages; the session keeps what follows at the broker
        if not self._stopping:
            conn.poll(batch_size, taken.__len__)
        n = len(taken)
        self._source.buffered = n
        if n and not self._stopping and n < batch_size and self._linger_ms:
            due = taken[0].received_ms + self._linger_ms
            now_ms = time.time_ns() // 1_000_000
            if now_ms < due:  # let a small batch grow a little: fewer, larger writes
                self._awake = datetime.now(UTC) + timedelta(milliseconds=due - now_ms)
                return []
        if n:
            batch = taken[:]
            taken.clear()
            self._awake = None
            self._source.on_batch(n)
            return batch
        if self._stopping:
            raise StopIteration
        self._awake = datetime.now(UTC) + self._idle
        return []

    def next_awake(self) -> datetime | None:
        return self._awake

    def close(self) -> None:
        self._conn.stop()


class MqttSource(DynamicSource[RawMessage]):
    """Device topics of one broker, split over the workers by a shared subscription."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        *,
        stop: threading.Event,
        prefix: str = "",
        group: str = "twinstream",
        client_id: str = "twinstream",
        qos: int = 1,
        batch_size: int = 5000,
        linger_ms: int = 5,
        idle_poll_ms: int = 20,
        session_expiry_s: int = 3600,
        on_batch: Callable[[int], None] | None = None,
        on_state: Callable[[str], None] | None = None,
        protocol: int = mqtt.MQTTv5,
    ) -> None:
        self.endpoint = endpoint
        self.stop = stop
        self.prefix = prefix
        self.group = group
        self.client_id = client_id
        self.qos = qos
        self.batch_size = batch_size
        self.linger_ms = linger_ms
        self.idle_poll_ms = idle_poll_ms
        self.session_expiry_s = session_expiry_s
        self.on_batch = on_batch or (lambda taken: None)
        self._notify_state = on_state or (lambda state: None)
        self.connections: list[MqttConnection] = []
        self.polled = 0.0
        """When a worker last asked for messages (``time.monotonic``)."""
        self.buffered = 0
        """Messages read from the broker and not yet handed on (the last worker to poll)."""
        self.state = "starting"
        self._protocol: int | None = None
        self._probe_lock = threading.Lock()

    def on_state(self, state: str) -> None:
        """A connection's state changed (connected, disconnected, refused)."""
        self.state = state
        self._notify_state(state)

    def protocol(self) -> int:
        with self._probe_lock:
            if self._protocol is None:
                self._protocol = probe_protocol(self.endpoint)
                if self._protocol == mqtt.MQTTv311:
                    log.warning(
                        "MQTT broker %s:%d refused MQTT 5: using MQTT 3.1.1 with a "
                        "single subscriber (no shared subscriptions)",
                        self.endpoint.host,
                        self.endpoint.port,
                    )
            return self._protocol

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _MqttPartition:
        return _MqttPartition(self, worker_index, self.protocol())
