"""Notifications from the outbox to a real local HTTP receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import psycopg
import pytest

from storage.database import psycopg_url
from tests.conftest import EngineProcess
from tests.integration.helpers import Publisher, Receiver, count_rows, now_ms, q, wait_until


@pytest.fixture
def notify_env(engine_env: dict[str, str]) -> dict[str, str]:
    return dict(engine_env, TWIN_NOTIFY_BACKOFF_S="0.2", TWIN_NOTIFY_TIMEOUT_S="2")


def add_route(database_url: str, route: str, url: str, group: str, secret: str = "") -> None:
    with psycopg.connect(psycopg_url(database_url), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO notification_routes (id, channel, target, secret, min_severity, "
            "device_group) VALUES (%s, 'webhook', %s, %s, 'warning', %s)",
            (route, url, secret, group),
        )


def hot_pump(pub: Publisher, device: str, group: str, readings: int = 50) -> None:
    pub.send(device, "attributes", {"kind": "machine", "profile": "pump", "group": group})
    t = now_ms() - 100_000
    for i in range(readings):
        values = {"temperature_c": 90.0, "load_pct": 70.0}
        pub.send(device, "telemetry", {"ts": t + i * 1000, "seq": i, "values": values})
    pub.flush()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_webhook_arrives_signed(
    receiver: Receiver,
    notify_env: dict[str, str],
    database_url: str,
    mqtt_url: str,
    topic_prefix: str,
):
    group = topic_prefix.strip("/")
    add_route(database_url, f"{group}-hook", receiver.url, group, secret="s3cret")
    engine = EngineProcess(notify_env).start()
    pub = Publisher(mqtt_url, topic_prefix)
    hot_pump(pub, f"{group}-p", group)
    assert wait_until(lambda: receiver.requests, 30), engine.log
    headers, body = receiver.requests[0]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Twinstream-Signature"] == expected
    payload = json.loads(body)
    assert payload["transition"] == "opened" and payload["rule_id"] == "machine-overheating"
    assert payload["device_id"] == f"{group}-p"
    log = wait_until(
        lambda: q(
            database_url,
            "SELECT channel, recipient, status, attempt FROM notification_log WHERE alert_id = %s",
            payload["alert_id"],
        )
    )
    assert log == [("webhook", receiver.url, "delivered", 1)]
    pub.close()
    assert engine.stop() == 0


def test_a_receiver_failing_three_times_gets_exactly_one_delivery(
    notify_env: dict[str, str], database_url: str, mqtt_url: str, topic_prefix: str
):
    flaky = Receiver(fail_first=3)
    group = topic_prefix.strip("/")
    add_route(database_url, f"{group}-flaky", flaky.url, group)
    engine = EngineProcess(notify_env).start()
    pub = Publisher(mqtt_url, topic_prefix)
    hot_pump(pub, f"{group}-p", group)

    def attempts() -> list[tuple]:
        rows = q(
            database_url,
            "SELECT attempt, l.status FROM notification_log l JOIN notification_outbox o "
            "ON o.id = l.outbox_id WHERE o.route_id = %s ORDER BY l.id",
            f"{group}-flaky",
        )
        return rows if any(status == "delivered" for _, status in rows) else []

    rows = wait_until(attempts, 30)
    assert rows == [(1, "failed"), (2, "failed"), (3, "failed"), (4, "delivered")], engine.log
    time.sleep(1.0)
    assert len(flaky.requests) == 4  # and nothing more once delivered
    outbox = q(
        database_url,
        "SELECT status, attempts FROM notification_outbox WHERE route_id = %s",
        f"{group}-flaky",
    )
    assert outbox == [("delivered", 4)]
    pub.close()
    flaky.close()
    assert engine.stop() == 0


def test_ingest_goes_on_while_the_receiver_hangs(
    notify_env: dict[str, str], database_url: str, mqtt_url: str, topic_prefix: str
):
    hanging = Receiver(hang_s=30)
    group = topic_prefix.strip("/")
    add_route(database_url, f"{group}-hang", hanging.url, group)
    engine = EngineProcess(notify_env).start()
    pub = Publisher(mqtt_url, topic_prefix)
    for n in range(3):  # three alerts queue up behind a receiver that never answers
        hot_pump(pub, f"{group}-p{n}", group)
    assert wait_until(lambda: hanging.requests, 30), engine.log
    device = f"{group}-flow"
    t = now_ms() - 20_000
    started = time.monotonic()
    for i in range(2000):
        pub.send(device, "telemetry", {"ts": t + i * 5, "seq": i, "values": {"load_pct": 50.0}})
    pub.flush()
    assert wait_until(lambda: count_rows(database_url, device) == 2000, 30), engine.log
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"2000 readings took {elapsed:.1f}s while the receiver hung"
    pub.close()
    hanging.close()
    assert engine.stop() == 0
