"""Notification routing and delivery against real PostgreSQL, HTTP and SMTP receivers.

Alerts are written through the engine's own PostgreSQL writer (which fills the outbox in the
alert's transaction) and delivered by the dispatcher, without a running dataflow. The module
has a database of its own: its routes take every alert of a matching severity.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller

from flows.jobs.notifier import Notifier
from storage import outbox
from storage.alert_store import act
from storage.database import connect, migrate, psycopg_url
from storage.maintenance import maintain
from storage.pg_writer import PgWriter
from tests.conftest import ROOT, fresh_database, reachable
from tests.integration.helpers import Receiver, q
from twin.alerts.records import AlertTransition
from twin.records import DeviceRecord, TwinOutput

T0 = 1_790_000_000_000
_devices = iter(range(1, 1_000_000))


@pytest.fixture(scope="module")
def db(pg_admin_url: str) -> Iterator[str]:
    with fresh_database(pg_admin_url) as url:
        migrate(url)
        yield url


@pytest.fixture
def clean(db: str) -> Iterator[str]:
    yield db
    with psycopg.connect(psycopg_url(db), autocommit=True) as conn:
        conn.execute(
            "TRUNCATE notification_routes, notification_outbox, notification_log, alerts CASCADE"
        )


def device(profile: str = "pump", group: str = "") -> str:
    return f"n-{profile}-{next(_devices)}" + (f"-{group}" if group else "")


def alert(
    writer: PgWriter,
    device_id: str,
    *,
    profile: str = "pump",
    group: str = "",
    transition: str = "opened",
    severity: str = "major",
    rule: str = "machine-overheating",
    first_ms: int = T0,
    at_ms: int | None = None,
) -> str:
    """Write one alert transition the way the engine does; returns the alert id."""
    at = at_ms if at_ms is not None else first_ms + 30_000
    t = AlertTransition(
        alert_id=f"{device_id}:{rule}:{first_ms}",
        device_id=device_id,
        rule_id=rule,
        rule_type="threshold",
        transition=transition,
        severity=severity,
        peak_severity=severity,
        occurrences=1,
        first_seen_ms=first_ms,
        last_seen_ms=at,
        at_ms=at,
        observed=97.5,
        detail="temperature_c 97.5",
    )
    attributes = {"group": group} if group else {}
    registry = DeviceRecord(device_id, "machine", profile, attributes, first_ms, at)
    out = TwinOutput(
        device_id=device_id,
        readings=[],
        dead_letters=[],
        events=[],
        live=None,
        registry=registry,
        alerts=[t],
    )
    writer.write([out])
    return t.alert_id


def add(url: str, **fields: Any) -> outbox.Route:
    route = outbox.Route(**fields)
    with connect(url) as conn:
        outbox.save_route(conn, route)
    return route


def deliver(url: str, **options: Any) -> Notifier:
    options = {"timeout_s": 2.0, "backoff_s": 0.05, **options}
    notifier = Notifier(url, threading.Event(), **options)
    notifier.run_once(wait=True)
    return notifier


def log_of(url: str, route_id: str) -> list[tuple]:
    return q(
        url,
        "SELECT o.transition, l.attempt, l.status FROM notification_log l "
        "JOIN notification_outbox o ON o.id = l.outbox_id WHERE o.route_id = %s ORDER BY l.id",
        route_id,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_routes_take_alerts_by_severity_profile_and_group(clean: str, receiver: Receiver):
    add(clean, id="all-major", channel="webhook", target=receiver.url, min_severity="major")
    add(clean, id="critical", channel="log", target="", min_severity="critical")
    add(clean, id="trucks", channel="log", target="", min_severity="info", profiles=("truck",))
    add(clean, id="north", channel="log", target="", min_severity="info", device_group="north")
    writer = PgWriter(clean)
    pump, truck, north = device("pump"), device("truck"), device("pump", "north")
    alert(writer, pump, severity="warning")
    alert(writer, truck, profile="truck", severity="major")
    alert(writer, north, group="north", severity="critical")
    rows = q(clean, "SELECT route_id, device_id FROM notification_outbox ORDER BY route_id, 2")
    assert rows == sorted(
        [
            ("all-major", truck),
            ("all-major", north),
            ("critical", north),
            ("trucks", truck),
            ("north", north),
        ]
    )
    payload = q(clean, "SELECT payload FROM notification_outbox WHERE device_id = %s", truck)[0][0]
    assert payload["profile"] == "truck" and payload["transition"] == "opened"
    deliver(clean)
    assert len(receiver.requests) == 2
    assert {json.loads(body)["device_id"] for _, body in receiver.requests} == {truck, north}
    assert q(clean, "SELECT DISTINCT status FROM notification_outbox") == [("delivered",)]


def test_the_same_transition_written_twice_is_notified_once(clean: str, receiver: Receiver):
    add(clean, id="hook", channel="webhook", target=receiver.url, secret="k")
    writer = PgWriter(clean)
    pump = device()
    alert(writer, pump)
    alert(writer, pump)  # a redelivered batch
    deliver(clean)
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    assert headers["X-Twinstream-Signature"] == (
        "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    )


def test_a_receiver_that_never_answers_is_given_up_after_the_limit(clean: str):
    dead = "http://127.0.0.1:9/hook"  # discard port: connection refused
    assert not reachable("127.0.0.1", 9)
    add(clean, id="dead", channel="webhook", target=dead)
    alert(PgWriter(clean), device())
    for _ in range(20):
        deliver(clean, max_attempts=3)
        time.sleep(0.1)
        if log_of(clean, "dead")[-1:] and log_of(clean, "dead")[-1][2] == "gave_up":
            break
    assert log_of(clean, "dead") == [
        ("opened", 1, "failed"),
        ("opened", 2, "failed"),
        ("opened", 3, "gave_up"),
    ]
    status = q(clean, "SELECT status, attempts, last_error FROM notification_outbox")
    assert status[0][:2] == ("failed", 3) and "unreachable" in status[0][2]


def test_per_device_rate_limit_suppresses_but_resolutions_go_out(clean: str, receiver: Receiver):
    add(clean, id="hook", channel="webhook", target=receiver.url, max_per_device_hour=2)
    writer = PgWriter(clean)
    noisy, other = device(), device()
    rules = ["pump-a", "pump-b", "pump-c", "machine-overheating"]
    for n, rule in enumerate(rules):  # four separate alerts on one device within the hour
        alert(writer, noisy, rule=rule, first_ms=T0 + n * 100_000)
    last = f"{noisy}:machine-overheating:{T0 + 300_000}"
    alert(writer, noisy, transition="resolved", first_ms=T0 + 300_000, at_ms=T0 + 400_000)
    alert(writer, other)
    deliver(clean)
    statuses = q(
        clean,
        "SELECT l.alert_id, o.transition, l.status FROM notification_log l "
        "JOIN notification_outbox o ON o.id = l.outbox_id WHERE l.device_id = %s ORDER BY l.id",
        noisy,
    )
    assert [s for _, _, s in statuses] == [
        "delivered",
        "delivered",
        "rate_limited",
        "rate_limited",
        "delivered",
    ]
    assert statuses[-1][:2] == (last, "resolved")
    assert q(clean, "SELECT count(*) FROM notification_log WHERE device_id = %s", other) == [(1,)]
    assert len(receiver.requests) == 4


def test_unacknowledged_alerts_are_reminded_until_acknowledged(clean: str, receiver: Receiver):
    add(clean, id="hook", channel="webhook", target=receiver.url, remind_every_s=60)
    alert_id = alert(PgWriter(clean), device())
    deliver(clean)
    assert [json.loads(b)["transition"] for _, b in receiver.requests] == ["opened"]
    with psycopg.connect(psycopg_url(clean), autocommit=True) as conn:  # stored 150 s ago
        conn.execute(
            "UPDATE alerts SET created_at = now() - interval '150 seconds' WHERE id = %s",
            (alert_id,),
        )
    deliver(clean)
    deliver(clean)  # the same interval again: no second reminder
    reminders = [json.loads(b) for _, b in receiver.requests[1:]]
    assert [r["transition"] for r in reminders] == ["reminder"]
    assert reminders[0]["alert_id"] == alert_id and reminders[0]["open_for_s"] >= 150
    with connect(clean) as conn:
        act(conn, alert_id, "ack", "dana")
        conn.execute(
            "UPDATE alerts SET created_at = now() - interval '500 seconds' WHERE id = %s",
            (alert_id,),
        )
        conn.commit()
    deliver(clean)
    assert len(receiver.requests) == 2  # acknowledged: no more reminders


def test_an_alert_a_person_resolved_gets_no_engine_notifications(clean: str, receiver: Receiver):
    add(clean, id="hook", channel="webhook", target=receiver.url)
    writer = PgWriter(clean)
    pump = device()
    alert_id = alert(writer, pump)
    with connect(clean) as conn:
        act(conn, alert_id, "resolve", "lee", "replaced the fan")
    alert(writer, pump, transition="escalated", severity="critical", at_ms=T0 + 60_000)
    deliver(clean)
    assert [json.loads(b)["transition"] for _, b in receiver.requests] == ["opened"]


def test_a_hanging_route_does_not_hold_up_the_others(clean: str, receiver: Receiver):
    hanging = Receiver(hang_s=5)
    try:
        add(clean, id="hang", channel="webhook", target=hanging.url)
        add(clean, id="fine", channel="webhook", target=receiver.url)
        writer = PgWriter(clean)
        notifier = Notifier(clean, threading.Event(), timeout_s=4.0, backoff_s=0.05)
        alert(writer, device())
        notifier.run_once()
        started = time.monotonic()
        while len(receiver.requests) < 1 and time.monotonic() - started < 3:
            time.sleep(0.02)
        assert len(receiver.requests) == 1  # delivered while the other receiver hangs
        alert(writer, device())
        notifier.run_once()  # the hanging route is busy: only the other one is claimed
        while len(receiver.requests) < 2 and time.monotonic() - started < 3:
            time.sleep(0.02)
        assert len(receiver.requests) == 2 and len(hanging.requests) == 1
        pending = q(
            clean, "SELECT count(*) FROM notification_outbox WHERE route_id = 'hang' AND "
            "status = 'pending' AND attempts = 0"
        )  # fmt: skip
        assert pending == [(2,)]
        notifier.close()  # waits for the hanging attempt to time out and be recorded
        assert [s for _, _, s in log_of(clean, "hang")] == ["failed"]
    finally:
        hanging.close()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[_Mailbox, int]]:
    mailbox = _Mailbox()
    with socket.socket() as probe:  # the controller checks itself on a fixed port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def test_email_and_slack_channels_reach_real_receivers(
    clean: str, receiver: Receiver, smtp: tuple[_Mailbox, int]
):
    mailbox, port = smtp
    target = f"smtp://127.0.0.1:{port}/ops@plant.example?from=twin@plant.example"
    add(clean, id="mail", channel="email", target=target)
    add(clean, id="chat", channel="slack", target=receiver.url)
    pump = device()
    alert(PgWriter(clean), pump, severity="critical")
    deliver(clean)
    assert len(mailbox.messages) == 1
    sender, recipients, raw = mailbox.messages[0]
    assert (sender, recipients) == ("twin@plant.example", ["ops@plant.example"])
    mail = message_from_bytes(raw, policy=policy.default)
    assert isinstance(mail, EmailMessage)
    # no stored rule gives it a name here, so the headline names the rule id; a long subject
    # is folded after "Subject:", which leaves a leading space for mail readers to strip
    subject = mail["Subject"].strip()
    assert subject == f"[CRITICAL] opened: machine-overheating on {pump} (temperature_c 97.5)"
    body = mail.get_content()
    assert f"Device:        {pump}" in body and '"alert_id"' in body
    chat = json.loads(receiver.requests[0][1])
    assert chat["text"].startswith("[CRITICAL] opened:") and pump in chat["text"]
    fields = {f["title"]: f["value"] for f in chat["attachments"][0]["fields"]}
    assert fields["Device"] == pump and fields["Observed"] == "97.5"
    assert chat["attachments"][0]["color"] == "#D00000"
    assert [s for _, _, s in log_of(clean, "mail")] == ["delivered"]
    answers = q(
        clean,
        "SELECT response FROM notification_log l JOIN notification_outbox o "
        "ON o.id = l.outbox_id WHERE o.route_id = 'mail'",
    )
    assert answers == [("sent to ops@plant.example",)]


def test_pending_notifications_survive_and_twin_notify_delivers_them(
    clean: str, receiver: Receiver
):
    add(clean, id="hook", channel="webhook", target=receiver.url)
    alert(PgWriter(clean), device())  # the engine stored it; no dispatcher was running
    assert q(clean, "SELECT status FROM notification_outbox") == [("pending",)]
    env = {"TWIN_DATABASE_URL": clean, "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "notify"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert len(receiver.requests) == 1, out
    assert proc.returncode == 0, out
    assert q(clean, "SELECT status FROM notification_outbox") == [("delivered",)]


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", "alerts", "route", *args],
        cwd=ROOT,
        env={"TWIN_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_routes_are_managed_and_tested_from_the_cli(clean: str, receiver: Receiver):
    added = cli(
        clean,
        *("add", "ops", "--channel", "webhook", "--target", receiver.url),
        *("--min-severity", "major", "--profile", "pump", "--remind-every", "30m"),
    )
    assert added.returncode == 0, added.stderr
    listed = cli(clean, "list")
    assert "ops" in listed.stdout and "1800s" in listed.stdout and "profile pump" in listed.stdout
    tested = cli(clean, "test", "ops")
    assert tested.returncode == 0 and "route ops: 200 ok" in tested.stdout, tested.stderr
    assert json.loads(receiver.requests[0][1])["transition"] == "test"
    bad = cli(clean, "add", "x", "--channel", "webhook", "--target", "ftp://nowhere")
    assert bad.returncode == 2 and "needs an http(s):// URL" in bad.stderr
    assert "Traceback" not in bad.stderr
    bad_time = cli(clean, "add", "x", "--channel", "log", "--remind-every", "soon")
    assert bad_time.returncode == 2 and "use seconds or 30m" in bad_time.stderr
    missing = cli(clean, "test", "nope")
    assert missing.returncode != 0 and "no route 'nope'" in missing.stderr
    assert cli(clean, "remove", "ops").returncode == 0
    assert q(clean, "SELECT count(*) FROM notification_routes") == [(0,)]


def test_maintenance_forgets_old_finished_notifications_but_never_pending_ones(
    clean: str, receiver: Receiver
):
    add(clean, id="hook", channel="webhook", target=receiver.url)
    writer = PgWriter(clean)
    old, recent, waiting = device(), device(), device()
    for d in (old, recent):
        alert(writer, d)
    deliver(clean)
    alert(writer, waiting)  # not delivered yet
    with psycopg.connect(psycopg_url(clean), autocommit=True) as conn:
        conn.execute(
            "UPDATE notification_outbox SET done_at = now() - interval '40 days', "
            "created_at = now() - interval '40 days' WHERE device_id = %s",
            (old,),
        )
        conn.execute(
            "UPDATE notification_log SET at = now() - interval '40 days' WHERE device_id = %s",
            (old,),
        )
        conn.execute(  # pending for 40 days (a receiver down that long): kept
            "UPDATE notification_outbox SET created_at = now() - interval '40 days' "
            "WHERE device_id = %s",
            (waiting,),
        )
    report = maintain(clean, ahead_days=1, retention_days=30)
    assert report.notifications_pruned == 2  # the old outbox row and its one attempt
    left = q(clean, "SELECT device_id, status FROM notification_outbox ORDER BY id")
    assert left == [(recent, "delivered"), (waiting, "pending")]
    assert q(clean, "SELECT device_id FROM notification_log") == [(recent,)]
