"""Notification channels: how one alert notification reaches a receiver.

* ``webhook``: the notification as JSON, POSTed to the route's URL. With a route secret the
  request carries ``X-Twinstream-Signature: sha256=<hex HMAC-SHA256 of the body>`` so the
  receiver can check that it came from this engine and was not altered.
* ``slack``: a Slack-compatible incoming-webhook message (``text`` plus one coloured attachment
  with the facts); Mattermost and Rocket.Chat accept the same format.
* ``email``: a plain-text mail over SMTP; the target is
  ``smtp://host:port/recipient@example.com?from=sender@example.com`` (``smtps://`` for TLS,
  user and password in the URL when the server wants them).
* ``log``: a WARNING line in the engine's log (useful as a catch-all and in the demo).

Each ``send`` returns the receiver's answer or raises ``DeliveryError``; retries, backoff and
bookkeeping belong to the dispatcher (``flows.jobs.notifier``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from twin.errors import DeliveryError

log = logging.getLogger(__name__)

CHANNELS = ("webhook", "slack", "email", "log")
SIGNATURE_HEADER = "X-Twinstream-Signature"
SEVERITY_COLOURS = {
    "info": "#439FE0",
    "warning": "#DAA038",
    "major": "#E8710A",
    "critical": "#D00000",
}


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headline(p: Mapping[str, Any]) -> str:
    name = p.get("rule_name") or p.get("rule_id")
    return (
        f"[{str(p.get('severity', '')).upper()}] {p.get('transition')}: {name} on "
        f"{p.get('device_id')}" + (f" ({p['detail']})" if p.get("detail") else "")
    )


def _when(ms: object) -> str:
    if not isinstance(ms, int):
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def facts(p: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The notification as labelled lines, for people (Slack fields, mail body)."""
    rows = [
        ("Alert", str(p.get("alert_id", ""))),
        ("Device", str(p.get("device_id", ""))),
        ("Rule", str(p.get("rule_id", ""))),
        ("Severity", str(p.get("severity", ""))),
        ("Peak severity", str(p.get("peak_severity", ""))),
        ("Occurrences", str(p.get("occurrences", ""))),
        ("First seen", _when(p.get("first_seen_ms"))),
        ("At", _when(p.get("at_ms"))),
        ("Observed", "" if p.get("observed") is None else f"{p['observed']:g}"),
        ("Detail", str(p.get("detail") or "")),
    ]
    return [(k, v) for k, v in rows if v]


def webhook_body(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def slack_body(payload: Mapping[str, Any]) -> bytes:
    attachment = {
        "color": SEVERITY_COLOURS.get(str(payload.get("severity")), "#888888"),
        "fallback": headline(payload),
        "fields": [{"title": k, "value": v, "short": len(v) < 40} for k, v in facts(payload)],
    }
    return json.dumps({"text": headline(payload), "attachments": [attachment]}).encode()


def email_message(sender: str, recipient: str, payload: Mapping[str, Any]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = headline(payload)
    message["From"], message["To"] = sender, recipient
    width = max((len(k) for k, _ in facts(payload)), default=0)
    lines = [f"{k + ':':<{width + 1}} {v}" for k, v in facts(payload)]
    message.set_content("\n".join(lines) + "\n\n" + json.dumps(payload, indent=2, sort_keys=True))
    return message


def send(
    channel: str, target: str, secret: str, payload: Mapping[str, Any], timeout_s: float
) -> str:
    """Deliver one notification; returns the receiver's answer or raises DeliveryError."""
    if channel == "webhook":
        body = webhook_body(payload)
        headers = {"Content-Type": "application/json", "User-Agent": "twinstream"}
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, body)
        return _post(target, body, headers, timeout_s)
    if channel == "slack":
        return _post(target, slack_body(payload), {"Content-Type": "application/json"}, timeout_s)
    if channel == "email":
        return _email(target, payload, timeout_s)
    if channel == "log":
        log.warning("ALERT %s", headline(payload))
        return "logged"
    raise DeliveryError(f"unknown channel {channel!r}")


def _post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> str:
    if not url.startswith(("http://", "https://")):
        raise DeliveryError(f"not an http(s) URL: {url!r}")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = response.read(500).decode(errors="replace")
            return f"{response.status} {answer}".strip()
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"unreachable: {reason}") from None


def _email(target: str, payload: Mapping[str, Any], timeout_s: float) -> str:
    parts = urlsplit(target)
    if parts.scheme not in ("smtp", "smtps"):
        raise DeliveryError(f"not an smtp:// or smtps:// target: {target!r}")
    recipient = unquote(parts.path.lstrip("/"))
    if "@" not in recipient:
        raise DeliveryError(f"no recipient address in {target!r}")
    sender = parse_qs(parts.query).get("from", ["twinstream@localhost"])[0]
    message = email_message(sender, recipient, payload)
    host = parts.hostname or "localhost"
    try:
        if parts.scheme == "smtps":
            context = ssl.create_default_context()
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                host, parts.port or 465, timeout=timeout_s, context=context
            )
        else:
            smtp = smtplib.SMTP(host, parts.port or 25, timeout=timeout_s)
        with smtp:
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            refused = smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP: {exc}") from None
    if refused:
        raise DeliveryError(f"SMTP refused {', '.join(refused)}")
    return f"sent to {recipient}"
