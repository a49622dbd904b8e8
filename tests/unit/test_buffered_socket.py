"""The socket wrapper of the driven MQTT client, on a real socket pair."""

from __future__ import annotations

import socket

import pytest

from flows.mqtt_client import BufferedSocket


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_small_reads_come_from_one_large_read_and_starvation_is_reported(pair):
    a, b = pair
    sock = BufferedSocket(a)
    b.sendall(b"\x30\x05hello\x40\x02")
    assert sock.recv(1) == b"\x30"
    assert sock.pending() == 8  # the rest is already in user space
    assert sock.recv(1) == b"\x05"
    assert sock.recv(5) == b"hello"
    assert sock.recv(4) == b"\x40\x02"  # a short read, as a socket may give
    assert not sock.starved
    with pytest.raises(BlockingIOError):
        sock.recv(1)
    assert sock.starved
    b.close()
    assert sock.recv(1) == b""  # end of stream is passed through


def test_writes_wait_for_flush_and_a_dead_peer_is_reported(pair):
    a, b = pair
    sock = BufferedSocket(a)
    assert sock.send(b"\x40\x02\x00\x01") == 4
    assert sock.send(b"\x40\x02\x00\x02") == 4
    b.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.recv(100)  # nothing sent yet
    assert sock.flush()
    assert b.recv(100) == b"\x40\x02\x00\x01\x40\x02\x00\x02"
    b.close()
    sock.send(b"x" * 10)
    ok = sock.flush()
    if ok:  # the kernel may accept one write after the peer closed; the next one fails
        sock.send(b"x" * 10)
        ok = sock.flush()
    assert not ok
    assert sock.recv(1) == b""  # shut down: paho sees the loss on its next read
