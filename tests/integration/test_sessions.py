"""A change of client id never strands readings in the old session: the engine drains it."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import mqtt5

from tests.conftest import EngineProcess
from tests.integration.helpers import Publisher, count_rows, now_ms, q, wait_until


def session_present(mqtt_url: str, client_id: str) -> bool:
    """Whether the broker still holds a session for ``client_id`` (then ends it at once)."""
    parts = urlsplit(mqtt_url)
    with socket.create_connection((parts.hostname, parts.port or 1883), timeout=5) as sock:
        sock.sendall(mqtt5.ConnectPacket(client_id, clean_start=False).write())
        answer = sock.recv(64)
        packet, _ = mqtt5.read(memoryview(answer))
        sock.sendall(mqtt5.DisconnectPacket().write())
    return bool(packet.session_present)


def test_readings_queued_for_an_old_client_id_are_drained(
    engine_env: dict[str, str], database_url: str, mqtt_url: str, topic_prefix: str
):
    run = topic_prefix.strip("/")
    device = f"{run}-car"
    first = EngineProcess(dict(engine_env, TWIN_MQTT_CLIENT_ID=f"{run}-a")).start()
    assert first.stop() == 0  # its session stays at the broker, subscribed

    pub = Publisher(mqtt_url, topic_prefix)
    t = now_ms() - 10_000
    for i in range(30):  # queued for the old session while no engine runs
        pub.send(device, "telemetry", {"ts": t + i, "seq": i, "values": {"speed_kmh": 30.0}})
    pub.close()

    second = EngineProcess(dict(engine_env, TWIN_MQTT_CLIENT_ID=f"{run}-b")).start()
    assert wait_until(lambda: count_rows(database_url, device) == 30, 30), second.log
    assert any(f"MQTT session {run}-a-0" in line and "draining" in line for line in second.lines)
    second.wait_for("is drained and ended", 30)
    assert wait_until(
        lambda: (
            q(
                database_url,
                "SELECT drained_at IS NOT NULL FROM mqtt_sessions WHERE client_id = %s",
                f"{run}-a-0",
            )
            == [(True,)]
        ),
        10,
    )
    assert not session_present(mqtt_url, f"{run}-a-0")  # the broker holds nothing for it
    assert second.stop() == 0

    third = EngineProcess(dict(engine_env, TWIN_MQTT_CLIENT_ID=f"{run}-b")).start()
    time.sleep(1)
    assert not any("draining" in line for line in third.lines)  # nothing left to drain
    assert third.stop() == 0
