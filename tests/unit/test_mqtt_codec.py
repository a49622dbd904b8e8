"""MQTT packets in and out, MQTT 5 (mqtt5) and 3.1.1 (by hand), from any split of the bytes."""

from __future__ import annotations

import mqtt5
import pytest

from flows.connectors.mqtt_codec import (
    CONNACK,
    PINGRESP,
    PUBLISH,
    SUBACK,
    MalformedPacket,
    V5Codec,
    V311Codec,
)


def v5_publish(topic: str, payload: bytes, pid: int, dup: bool = False, sub: int = 1) -> bytes:
    return mqtt5.PublishPacket(
        topic, payload, qos=mqtt5.QoS.AT_LEAST_ONCE, packet_id=pid, duplicate=dup,
        subscription_ids=[sub],
    ).write()  # fmt: skip


def v311_publish(topic: str, payload: bytes, pid: int | None, dup: bool = False) -> bytes:
    head = 0x30 | (0x02 if pid is not None else 0) | (0x08 if dup else 0)
    body = len(topic.encode()).to_bytes(2, "big") + topic.encode()
    if pid is not None:
        body += pid.to_bytes(2, "big")
    body += payload
    n, length = len(body), bytearray()
    while True:
        byte, n = n % 128, n // 128
        length.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes([head]) + bytes(length) + body


def decode_in_pieces(codec, data: bytes, cut: int) -> list:
    """Feed the bytes in chunks of ``cut`` as a socket would, keeping the leftover."""
    out, held = [], b""
    for i in range(0, len(data), cut):
        held += data[i : i + cut]
        packets, used = codec.decode(held, 0)
        out += packets
        held = held[used:]
    assert held == b""
    return out


@pytest.mark.parametrize("cut", [1, 7, 100, 1 << 20])
def test_v5_publishes_decode_from_any_split(cut):
    stream = b"".join(v5_publish(f"devices/d{i}/telemetry", b"x" * (i * 37), i + 1, dup=i % 2 == 1)
                      for i in range(50))  # fmt: skip
    stream += mqtt5.PingRespPacket().write()
    packets = decode_in_pieces(V5Codec(), stream, cut)
    assert len(packets) == 51 and packets[-1] == (PINGRESP,)
    for i, p in enumerate(packets[:-1]):
        assert p == (PUBLISH, f"devices/d{i}/telemetry", b"x" * (i * 37), i + 1, i % 2 == 1, [1])


def test_v5_control_packets():
    codec = V5Codec()
    connack = mqtt5.ConnAckPacket(session_present=True).write()
    suback = mqtt5.SubAckPacket(1, [mqtt5.SubAckReasonCode.GRANTED_QOS_AT_LEAST_ONCE]).write()
    packets, used = codec.decode(connack + suback, 0)
    assert packets == [(CONNACK, True, 0), (SUBACK, 1, [1])] and used == len(connack + suback)


def test_v5_connect_asks_for_a_large_receive_maximum_and_subscribes_at_qos1():
    connect = mqtt5.read(memoryview(V5Codec().connect(
        "c1", clean_start=False, keep_alive=30, session_expiry_s=3600, username="u",
        password="p",
    )))[0]  # fmt: skip
    assert (connect.client_id, connect.clean_start, connect.session_expiry_interval) == (
        "c1", False, 3600,
    )  # fmt: skip
    assert connect.receive_max == 65534 and connect.password == b"p"
    sub = mqtt5.read(memoryview(V5Codec().subscribe(3, "$share/g/devices/#", 1)))[0]
    assert sub.packet_id == 3 and sub.subscription_id == 1
    assert sub.topic_filters[0].max_qos == mqtt5.QoS.AT_LEAST_ONCE
    acks = V5Codec().puback([1, 2, 300])
    assert acks == b"".join(mqtt5.PubAckPacket(p).write() for p in (1, 2, 300))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # mqtt5 panics
def test_a_publish_mqtt5_refuses_is_still_read_by_hand():
    """A topic that is not UTF-8 must become a dead letter, not a dropped connection."""
    bad = bytearray(v5_publish("devices/ab/telemetry", b"{}", 9))
    bad[bad.index(b"ab") : bad.index(b"ab") + 2] = b"\xff\xfe"
    packets, used = V5Codec().decode(bytes(bad), 0)
    assert used == len(bad)
    kind, topic, payload, pid, _, _ = packets[0]
    assert (kind, payload, pid) == (PUBLISH, b"{}", 9) and "\ufffd" in topic


def test_garbage_from_the_broker_is_malformed():
    with pytest.raises(MalformedPacket):
        V5Codec().decode(b"\x20\x03\x00\xff\xff", 0)
    with pytest.raises(MalformedPacket):
        V311Codec().decode(b"\x30\xff\xff\xff\xff\x01", 0)


@pytest.mark.parametrize("cut", [1, 5, 1 << 20])
def test_v311_publishes_and_control_packets(cut):
    stream = (
        b"\x20\x02\x01\x00"  # CONNACK, session present
        + b"\x90\x03\x00\x01\x01"  # SUBACK
        + v311_publish("devices/a/telemetry", b'{"rpm": 1}', 17)
        + v311_publish("devices/b/telemetry", b"z" * 300, 18, dup=True)
        + v311_publish("devices/c/telemetry", b"q", None)
        + b"\xd0\x00"
    )
    packets = decode_in_pieces(V311Codec(), stream, cut)
    assert packets == [
        (CONNACK, True, 0),
        (SUBACK, 1, [1]),
        (PUBLISH, "devices/a/telemetry", b'{"rpm": 1}', 17, False, []),
        (PUBLISH, "devices/b/telemetry", b"z" * 300, 18, True, []),
        (PUBLISH, "devices/c/telemetry", b"q", None, False, []),
        (PINGRESP,),
    ]


def test_v311_connect_subscribe_and_acks():
    codec = V311Codec()
    connect = codec.connect("engine-0", clean_start=False, keep_alive=30, session_expiry_s=0,
                            username="u", password="pw")  # fmt: skip
    assert connect[0] == 0x10 and b"\x00\x04MQTT\x04" in connect
    assert connect[connect.index(b"MQTT") + 5] == 0xC0  # username and password, no clean start
    assert connect.endswith(b"\x00\x08engine-0\x00\x01u\x00\x02pw")
    assert codec.subscribe(1, "devices/#", None) == b"\x82\x0e\x00\x01\x00\x09devices/#\x01"
    assert codec.puback([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"
