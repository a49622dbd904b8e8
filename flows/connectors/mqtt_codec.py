"""MQTT packets for the engine's source: MQTT 5 through ``mqtt5`` (Rust), MQTT 3.1.1 by hand.

Only what a subscriber needs: CONNECT, SUBSCRIBE, PUBACK, PINGREQ and DISCONNECT out; CONNACK,
SUBACK, PUBLISH, PINGRESP and DISCONNECT in. Decoding is sans-I/O: :meth:`Codec.decode` takes
the bytes read so far and returns the packets they complete and how many bytes those used.

Incoming packets are normalised to small tuples so that the connection handles both versions
with one loop: ``(PUBLISH, topic, payload, packet_id | None, dup, subscription_ids)``,
``(CONNACK, session_present, code)``, ``(SUBACK, packet_id, codes)``, ``(PINGRESP,)``,
``(DISCONNECT, code)``, ``(OTHER,)``.
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

import mqtt5

PUBLISH, CONNACK, SUBACK, PINGRESP, DISCONNECT, OTHER = range(6)

UNSUPPORTED_PROTOCOL_V5 = 132
UNSUPPORTED_PROTOCOL_V311 = 1

Packet = tuple[Any, ...]


class MalformedPacket(Exception):
    """The broker sent bytes that are not MQTT: the connection must be dropped."""


class Codec(Protocol):
    version: str

    def connect(
        self,
        client_id: str,
        *,
        clean_start: bool,
        keep_alive: int,
        session_expiry_s: int,
        username: str | None,
        password: str | None,
    ) -> bytes: ...

    def subscribe(self, packet_id: int, pattern: str, subscription_id: int | None) -> bytes: ...

    def unsubscribe(self, packet_id: int, patterns: list[str]) -> bytes: ...

    def puback(self, packet_ids: list[int]) -> bytes: ...

    def pingreq(self) -> bytes: ...

    def disconnect(self) -> bytes: ...

    def decode(self, data: bytes, start: int) -> tuple[list[Packet], int]: ...


RECEIVE_MAXIMUM = 65534
"""Messages the broker may have in flight to us. 65,535 is MQTT 5's default, so it is left
out of CONNECT, and Mosquitto then applies its own ``max_inflight_messages`` (20): with
acknowledgements sent only after commit, that would allow 20 messages per commit."""


class V5Codec:
    version = "5"

    def __init__(self) -> None:
        self._read = mqtt5.read
        self._publish = mqtt5.PublishPacket
        self._puback = mqtt5.PubAckPacket

    def connect(
        self,
        client_id: str,
        *,
        clean_start: bool,
        keep_alive: int,
        session_expiry_s: int,
        username: str | None,
        password: str | None,
    ) -> bytes:
        return mqtt5.ConnectPacket(
            client_id,
            username=username,
            password=password.encode() if password is not None else None,
            clean_start=clean_start,
            keep_alive=keep_alive,
            session_expiry_interval=session_expiry_s,
            receive_max=RECEIVE_MAXIMUM,
        ).write()

    def subscribe(self, packet_id: int, pattern: str, subscription_id: int | None) -> bytes:
        return mqtt5.SubscribePacket(
            packet_id,
            [
                mqtt5.TopicFilter(
                    pattern,
                    max_qos=mqtt5.QoS.AT_LEAST_ONCE,
                    # retained metadata once per subscription, not again at every reconnect
                    retain_handling=mqtt5.RetainHandling.SEND_IF_SUBSCRIPTION_NOT_EXISTS,
                )
            ],
            subscription_id=subscription_id,
        ).write()

    def unsubscribe(self, packet_id: int, patterns: list[str]) -> bytes:
        return mqtt5.UnsubscribePacket(packet_id, patterns).write()

    def puback(self, packet_ids: list[int]) -> bytes:
        ack = self._puback
        return b"".join([ack(p).write() for p in packet_ids])

    def pingreq(self) -> bytes:
        return mqtt5.PingReqPacket().write()

    def disconnect(self) -> bytes:
        return mqtt5.DisconnectPacket().write()

    def decode(self, data: bytes, start: int) -> tuple[list[Packet], int]:
        view = memoryview(data)
        read, publish = self._read, self._publish
        out: list[Packet] = []
        pos = start
        end = len(data)
        while pos < end:
            try:
                packet, used = read(view[pos:])
            except IndexError:  # an incomplete packet: wait for more bytes
                break
            except BaseException as exc:  # a PUBLISH mqtt5 will not take is still a message
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise  # (mqtt5 may panic: pyo3's PanicException is a BaseException)
                framed = _frame(data, pos)
                if framed is None:
                    break
                first, body_at, pos = framed
                if first >> 4 != 3:
                    raise MalformedPacket(f"{type(exc).__name__}: {exc}") from None
                out.append(_v5_publish(first, data[body_at:pos]))
                continue
            pos += used
            if type(packet) is publish:
                out.append(
                    (
                        PUBLISH,
                        packet.topic,
                        packet.payload,
                        packet.packet_id,
                        packet.duplicate,
                        packet.subscription_ids,
                    )
                )
            else:
                out.append(_v5_other(packet))
        return out, pos


def _v5_other(packet: Any) -> Packet:
    if isinstance(packet, mqtt5.ConnAckPacket):
        return (CONNACK, packet.session_present, int(packet.reason_code))
    if isinstance(packet, mqtt5.SubAckPacket):
        return (SUBACK, packet.packet_id, [int(c) for c in packet.reason_codes])
    if isinstance(packet, mqtt5.PingRespPacket):
        return (PINGRESP,)
    if isinstance(packet, mqtt5.DisconnectPacket):
        return (DISCONNECT, int(packet.reason_code))
    return (OTHER,)


def _frame(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """``(first byte, body start, packet end)`` of the packet at ``pos``; None if incomplete."""
    end = len(data)
    length, shift, i = 0, 0, pos + 1
    while True:
        if i >= end:
            return None
        byte = data[i]
        length |= (byte & 0x7F) << shift
        i += 1
        if not byte & 0x80:
            break
        shift += 7
        if shift > 21:
            raise MalformedPacket("remaining length longer than four bytes")
    if i + length > end:
        return None
    return data[pos], i, i + length


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _v5_publish(first: int, body: bytes) -> Packet:
    """A PUBLISH decoded by hand (a topic that is not UTF-8, a property mqtt5 refuses): the
    parser makes a dead letter of it, and it is acknowledged like any other message."""
    try:
        qos = (first >> 1) & 3
        n = struct.unpack("!H", body[:2])[0]
        topic = body[2 : 2 + n].decode("utf-8", "replace")
        at = 2 + n
        packet_id = None
        if qos:
            packet_id = struct.unpack("!H", body[at : at + 2])[0]
            at += 2
        props, at = _varint(body, at)
        return (PUBLISH, topic, body[at + props :], packet_id, bool(first & 0x08), [])
    except (IndexError, struct.error) as exc:
        raise MalformedPacket(f"PUBLISH cannot be read: {exc}") from None


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def _fixed(first: int, body: bytes) -> bytes:
    n = len(body)
    length = bytearray()
    while True:
        byte, n = n % 128, n // 128
        length.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes([first]) + bytes(length) + body


class V311Codec:
    """MQTT 3.1.1 for brokers that refuse MQTT 5 (the demo's embedded amqtt)."""

    version = "3.1.1"

    def connect(
        self,
        client_id: str,
        *,
        clean_start: bool,
        keep_alive: int,
        session_expiry_s: int,
        username: str | None,
        password: str | None,
    ) -> bytes:
        flags = 0x02 if clean_start else 0
        payload = _string(client_id)
        if username is not None:
            flags |= 0x80
            payload += _string(username)
            if password is not None:
                flags |= 0x40
                payload += _string(password)
        header = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", keep_alive)
        return _fixed(0x10, header + payload)

    def subscribe(self, packet_id: int, pattern: str, subscription_id: int | None) -> bytes:
        return _fixed(0x82, struct.pack("!H", packet_id) + _string(pattern) + b"\x01")

    def unsubscribe(self, packet_id: int, patterns: list[str]) -> bytes:
        body = struct.pack("!H", packet_id) + b"".join(_string(p) for p in patterns)
        return _fixed(0xA2, body)

    def puback(self, packet_ids: list[int]) -> bytes:
        return b"".join([b"\x40\x02" + struct.pack("!H", p) for p in packet_ids])

    def pingreq(self) -> bytes:
        return b"\xc0\x00"

    def disconnect(self) -> bytes:
        return b"\xe0\x00"

    def decode(self, data: bytes, start: int) -> tuple[list[Packet], int]:
        out: list[Packet] = []
        pos = start
        end = len(data)
        while pos + 2 <= end:
            framed = _frame(data, pos)
            if framed is None:
                break
            first, body_at, pos = framed
            body = data[body_at:pos]
            length = len(body)
            kind = first >> 4
            if kind == 3:
                out.append(_v311_publish(first, body))
            elif kind == 2:
                if length < 2:
                    raise MalformedPacket("short CONNACK")
                out.append((CONNACK, bool(body[0] & 1), body[1]))
            elif kind == 9:
                out.append((SUBACK, struct.unpack("!H", body[:2])[0], list(body[2:])))
            elif kind == 13:
                out.append((PINGRESP,))
            else:
                out.append((OTHER,))
        return out, pos


def _v311_publish(first: int, body: bytes) -> Packet:
    qos = (first >> 1) & 3
    if len(body) < 2:
        raise MalformedPacket("short PUBLISH")
    n = struct.unpack("!H", body[:2])[0]
    try:
        topic = body[2 : 2 + n].decode()
    except UnicodeDecodeError:
        topic = body[2 : 2 + n].decode("utf-8", "replace")
    at = 2 + n
    packet_id = None
    if qos:
        packet_id = struct.unpack("!H", body[at : at + 2])[0]
        at += 2
    return (PUBLISH, topic, body[at:], packet_id, bool(first & 0x08), [])
