"""A backlog larger than the receive maximum, against a real Mosquitto: every message is taken
once and the session never stalls.

Mosquitto 2.0.11 (Debian's) sends past the receive maximum to a session far behind whose
acknowledgements free many identifiers at once, so its packet identifiers wrap around while
the messages first holding them wait for their commit. Taking such a message as a
redelivery left it unacknowledged and the broker's quota used up: the session stopped
receiving with messages queued. The same broker also keeps the wrapped messages after their
acknowledgement and delivers them again on the next connection: duplicates, which the store
absorbs (a reading's identity is device, ``ts`` and ``seq``).
"""

from __future__ import annotations

import shutil
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from flows.connectors.ledger import CommitLedger
from flows.connectors.mqtt_source import MqttSource, _MqttPartition
from flows.runtime.settings import MqttEndpoint
from twin.records import RawMessage

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto") is None, reason="needs the mosquitto binary"
)

BACKLOG = 150_000
ROUND = 50_000
"""Messages taken per round, committed one round later, as a busy engine with large batches
does: the window stays near the receive maximum (65,534) while acknowledgements flow."""


class _Session:
    """The engine's MQTT source partition under a persistent session, driven by hand."""

    def __init__(self, port: int, prefix: str, client_id: str) -> None:
        self.stop = threading.Event()
        self.ledger = CommitLedger()
        source = MqttSource(
            MqttEndpoint("127.0.0.1", port), stop=self.stop, ledger=self.ledger, prefix=prefix,
            client_id=client_id, protocol="5",
        )  # fmt: skip
        self.source = source
        self.part: _MqttPartition = source.build("mqtt", 0, 1)

    def take(self, wanted: int, quiet_s: float) -> list[RawMessage]:
        taken: list[RawMessage] = []
        last = time.monotonic()
        while len(taken) < wanted and time.monotonic() - last < quiet_s:
            batch = self.part.next_batch()
            if batch:
                taken += batch
                last = time.monotonic()
            else:
                time.sleep(0.001)
        return taken

    def subscribed(self, timeout_s: float = 10) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.source.subscribed.is_set() and time.monotonic() < deadline:
            self.part.next_batch()
            time.sleep(0.01)
        assert self.source.subscribed.is_set()

    def close(self) -> None:
        """Send what is acknowledged, then DISCONNECT (the session stays at the broker)."""
        self.stop.set()
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                self.part.next_batch()
                time.sleep(0.001)
        except StopIteration:
            return
        raise AssertionError("the source did not stop")


def _publish(port: int, topic: str, count: int) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311, client_id="window")
    client.max_inflight_messages_set(10_000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    info = None
    for i in range(count):  # the network loop driven here: paho's own thread is ten times slower
        info = client.publish(topic, b'{"values": {"n": %d}}' % i, qos=1)
        if i % 200 == 0:
            client.loop(timeout=0)
    deadline = time.monotonic() + 120
    while info is not None and not info.is_published() and time.monotonic() < deadline:
        client.loop(timeout=0.01)
    assert info is not None and info.is_published()
    client.disconnect()


def test_a_backlog_past_the_receive_maximum_is_taken_whole_and_acknowledged(
    deep_broker, topic_prefix
):
    port, client_id = deep_broker, topic_prefix.strip("/")
    session = _Session(port, topic_prefix, client_id)
    session.subscribed()
    session.close()  # the persistent session waits at the broker
    _publish(port, f"{topic_prefix}devices/win-1/telemetry", BACKLOG)

    session = _Session(port, topic_prefix, client_id)
    taken: list[RawMessage] = []
    behind: list[RawMessage] = []
    while len(taken) < BACKLOG:
        got = session.take(ROUND, quiet_s=3)
        if not got and not behind:
            break
        session.ledger.committed([m.ticket for m in behind])  # the round before commits
        taken += got
        behind = got
    session.ledger.committed([m.ticket for m in behind])
    session.close()
    assert len(taken) == BACKLOG, f"took {len(taken)} of {BACKLOG}"
    assert len({m.payload for m in taken}) == BACKLOG

    after = _Session(port, topic_prefix, client_id)
    again = after.take(BACKLOG, quiet_s=3)
    after.ledger.committed([m.ticket for m in again])
    after.close()
    assert {m.payload for m in again} <= {m.payload for m in taken}  # nothing held back
