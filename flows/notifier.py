"""Delivers alert notifications from the outbox: webhook, Slack, email, log.

Runs beside the dataflow (a thread of ``twin run``, or ``twin notify`` on its own), never in its
path: a receiver that hangs costs this thread its timeout, not the engine its ingest rate.
Each attempt is written to ``notification_log``; failures are retried with exponential backoff
(2, 4, 8, ... s) and given up after ``max_attempts``; per device and recipient at most
``max_per_device_hour`` deliveries an hour (beyond that: ``rate_limited``); unacknowledged
alerts are reminded every ``remind_every_s`` of their route.

Webhook requests carry ``X-Twinstream-Signature: sha256=<hex HMAC-SHA256 of the body with the
route's secret>`` so the receiver can check who sent them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import threading
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg

from storage import outbox
from storage.database import connect

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twinstream-Signature"


class DeliveryError(Exception):
    """The receiver did not take the notification (the message says what it answered)."""


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headline(p: dict[str, Any]) -> str:
    return (
        f"[{str(p.get('severity', '')).upper()}] {p.get('transition')}: {p.get('rule_id')} on "
        f"{p.get('device_id')}" + (f" ({p['detail']})" if p.get("detail") else "")
    )


def _post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> str:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return f"{response.status} {response.read(500).decode(errors='replace')}".strip()
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"unreachable: {reason}") from None


def send(due: outbox.Due, timeout_s: float) -> str:
    """Deliver one notification; returns the receiver's answer or raises DeliveryError."""
    payload = due.payload
    if due.channel == "webhook":
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "twinstream"}
        if due.secret:
            headers[SIGNATURE_HEADER] = sign(due.secret, body)
        return _post(due.target, body, headers, timeout_s)
    if due.channel == "slack":
        body = json.dumps({"text": headline(payload)}).encode()
        return _post(due.target, body, {"Content-Type": "application/json"}, timeout_s)
    if due.channel == "email":
        return _email(due.target, payload, timeout_s)
    log.warning("ALERT %s", headline(payload))
    return "logged"


def _email(target: str, payload: dict[str, Any], timeout_s: float) -> str:
    """``smtp://host:port/recipient@example.com?from=twin@example.com``."""
    parts = urlsplit(target)
    recipient = parts.path.lstrip("/")
    sender = parse_qs(parts.query).get("from", ["twinstream@localhost"])[0]
    message = EmailMessage()
    message["Subject"] = headline(payload)
    message["From"], message["To"] = sender, recipient
    message.set_content(json.dumps(payload, indent=2, sort_keys=True))
    try:
        with smtplib.SMTP(parts.hostname or "localhost", parts.port or 25, timeout=timeout_s) as s:
            s.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP: {exc}") from None
    return f"sent to {recipient}"


class Notifier(threading.Thread):
    def __init__(
        self,
        database_url: str,
        stop: threading.Event,
        *,
        poll_s: float = 1.0,
        timeout_s: float = 5.0,
        max_attempts: int = 6,
        backoff_s: float = 2.0,
    ) -> None:
        super().__init__(name="notifier", daemon=True)
        self._url = database_url
        self._stop = stop
        self._poll = poll_s
        self._timeout = timeout_s
        self._max_attempts = max_attempts
        self._backoff = backoff_s
        self.delivered = 0

    def run(self) -> None:
        log.info("notifications: delivering from the outbox")
        while not self._stop.wait(self._poll):
            try:
                self.run_once()
            except psycopg.Error as exc:
                log.warning("notifications paused: %s", exc)

    def run_once(self) -> int:
        done = 0
        with connect(self._url) as conn:
            outbox.enqueue_reminders(conn)
            for due in outbox.claim(conn):
                if self._stop.is_set():
                    break
                self._deliver(conn, due)
                done += 1
        return done

    def _deliver(self, conn: psycopg.Connection, due: outbox.Due) -> None:
        if due.transition != "resolved" and due.max_per_device_hour > 0:
            sent = outbox.sent_last_hour(conn, due.device_id, due.channel, due.target)
            if sent >= due.max_per_device_hour:
                outbox.record(conn, due, "rate_limited", f"{sent} in the last hour")
                return
        try:
            answer = send(due, self._timeout)
        except DeliveryError as exc:
            if due.attempts + 1 >= self._max_attempts:
                outbox.record(conn, due, "gave_up", str(exc))
                log.warning("notification %d to %s given up: %s", due.id, due.target, exc)
            else:
                delay = self._backoff * 2**due.attempts
                outbox.record(conn, due, "failed", str(exc), retry_in_s=delay)
            return
        outbox.record(conn, due, "delivered", answer)
        self.delivered += 1
