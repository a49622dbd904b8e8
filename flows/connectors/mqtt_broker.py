"""What the engine asks of a broker before it reads: TLS, and which MQTT version it speaks."""

from __future__ import annotations

import socket
import ssl
import time

import mqtt5

from flows.connectors.mqtt_codec import UNSUPPORTED_PROTOCOL_V5, UNSUPPORTED_PROTOCOL_V311, V5Codec
from flows.runtime.settings import MqttEndpoint


def tls_context(endpoint: MqttEndpoint) -> ssl.SSLContext | None:
    if not endpoint.tls:
        return None
    return ssl.create_default_context(cafile=endpoint.ca_file)


def probe_protocol(endpoint: MqttEndpoint, timeout_s: float = 5.0) -> str:
    """ "5" unless the broker refuses MQTT 5 ("3.1.1").

    The probe sends a bare MQTT 5 CONNECT (no properties, clean start, throwaway client id):
    amqtt answers that with "unsupported protocol version" but hangs on one that carries
    properties, so the real connection cannot be the probe. Any other answer, or none, means
    MQTT 5 (the real connection then reports what is wrong).
    """
    codec = V5Codec()
    hello = mqtt5.ConnectPacket(
        f"twinstream-probe-{time.time_ns()}",
        username=endpoint.username,
        password=endpoint.password.encode() if endpoint.password is not None else None,
        clean_start=True,
        keep_alive=10,
    ).write()  # no properties at all
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout_s) as raw:
            context = tls_context(endpoint)
            sock = context.wrap_socket(raw, server_hostname=endpoint.host) if context else raw
            sock.sendall(hello)
            answer = b""
            while len(answer) < 4:
                chunk = sock.recv(64)
                if not chunk:
                    break
                answer += chunk
            if len(answer) >= 2 and answer[0] == 0x20:
                code = answer[3] if len(answer) >= 4 else 0
                if code in (UNSUPPORTED_PROTOCOL_V5, UNSUPPORTED_PROTOCOL_V311):
                    return "3.1.1"
                if code == 0:
                    sock.sendall(codec.disconnect())
    except (OSError, ValueError):
        pass
    return "5"
