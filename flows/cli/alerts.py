"""``twin alerts``: the alert list and what people do with alerts."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from api import bodies
from flows.jobs import channels
from flows.runtime.settings import Settings
from storage import outbox
from storage.alert_store import (
    act,
    list_alerts,
    remove_rule,
    save_rules,
    set_rule_enabled,
    show_alert,
    stored_rules,
)
from storage.database import connect_migrated
from twin.alerts.rules import parse_rules
from twin.errors import ConfigurationError, UnknownItem


def _since(text: str) -> datetime:
    """``30m``, ``2h``, ``7d`` ago, or an ISO 8601 time."""
    units = {"m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(f"--since {text!r}: use 30m, 2h, 7d or an ISO time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def duration(seconds: float) -> str:
    """``45s``, ``12m05s``, ``3h07m``, ``2d04h``."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def run_alerts(args: argparse.Namespace, settings: Settings) -> int:
    with connect_migrated(settings.require_database()) as conn:
        if args.action == "route":
            return _route(conn, args, settings)
        if args.action == "rule":
            return _rule(conn, args)
        if args.action == "list":
            rows = list_alerts(
                conn,
                status=args.status,
                device=args.device,
                severity=args.severity,
                since=_since(args.since) if args.since else None,
                limit=args.limit,
            )
            if args.json:
                print(bodies.dumps(bodies.alerts(rows)))
                return 0
            now = datetime.now(UTC)
            print(
                f"{'id':<44} {'status':<12} {'severity':<9} {'peak':<9} {'n':>4} "
                f"{'first seen':<20} {'open for':>9}  detail"
            )
            for r in rows:
                print(
                    f"{r.id:<44} {r.status:<12} {r.severity:<9} {r.peak_severity:<9} "
                    f"{r.occurrences:>4} {r.first_seen:%Y-%m-%d %H:%M:%S}  "
                    f"{duration(r.duration_s(now)):>9}  {r.detail}"
                    + (f" (assigned to {r.assigned_to})" if r.assigned_to else "")
                )
            print(f"{len(rows)} alert(s)")
            return 0
        if args.action == "show":
            alert, timeline = show_alert(conn, args.id)
            if args.json:
                print(bodies.dumps(bodies.alert(alert, timeline)))
                return 0
            for key, value in alert.items():
                if value is not None:
                    print(f"{key:<16} {value}")
            end = alert.get("resolved_at") or datetime.now(UTC)
            label = "was open for" if alert.get("status") == "resolved" else "open for"
            print(f"{label:<16} {duration((end - alert['first_seen']).total_seconds())}")
            print("timeline:")
            for at, transition, status, severity, by, note in timeline:
                print(f"  {at:%Y-%m-%d %H:%M:%S}  {transition:<12} {status:<12} {severity:<9} "
                      f"by {by}" + (f"  {note}" if note else ""))  # fmt: skip
            return 0
        to = getattr(args, "to", None)
        if args.action == "assign" and not to:
            raise ConfigurationError("assign needs --to NAME")
        status = act(conn, args.id, args.action, args.by, args.note or "", to)
        print(f"alert {args.id}: {status}")
        return 0


def _route(conn: psycopg.Connection, args: argparse.Namespace, settings: Settings) -> int:
    if args.route_action == "list":
        _list_routes(conn, args.json)
    elif args.route_action == "add":
        outbox.save_route(
            conn,
            outbox.Route(
                id=args.id,
                channel=args.channel,
                target=args.target,
                secret=args.secret,
                min_severity=args.min_severity,
                profiles=tuple(args.profile),
                device_group=args.group,
                max_per_device_hour=args.max_per_hour,
                remind_every_s=args.remind_every,
                enabled=not args.disabled,
            ),
        )
        print(f"route {args.id}: saved")
    elif args.route_action == "remove":
        outbox.remove_route(conn, args.id)
        print(f"route {args.id}: removed")
    else:
        _test_route(conn, args.id, settings)
    return 0


def _list_routes(conn: psycopg.Connection, as_json: bool) -> None:
    routes = outbox.list_routes(conn)
    if as_json:
        print(bodies.dumps(bodies.routes(routes, outbox.counts(conn))))
        return
    print(f"{'id':<20} {'channel':<8} {'min sev':<9} {'per h':>5} {'remind':>7} target")
    for r in routes:
        scope = ", ".join(
            [*(f"profile {p}" for p in r.profiles)]
            + ([f"group {r.device_group}"] if r.device_group else [])
            + ([] if r.enabled else ["disabled"])
        )
        remind = f"{r.remind_every_s}s" if r.remind_every_s else "-"
        print(
            f"{r.id:<20} {r.channel:<8} {r.min_severity:<9} {r.max_per_device_hour:>5} "
            f"{remind:>7} {r.target or '(log)'}" + (f"  [{scope}]" if scope else "")
        )
    waiting = ", ".join(f"{n} {status}" for status, n in sorted(outbox.counts(conn).items()))
    print(f"{len(routes)} route(s); outbox: {waiting or 'empty'}")


def _test_route(conn: psycopg.Connection, route_id: str, settings: Settings) -> None:
    route = next((r for r in outbox.list_routes(conn) if r.id == route_id), None)
    if route is None:
        raise UnknownItem(f"no route {route_id!r}")
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    sample = {
        "alert_id": f"test:{route.id}:{now_ms}",
        "device_id": "test-device",
        "rule_id": "test",
        "rule_name": "Test notification",
        "transition": "test",
        "severity": route.min_severity,
        "peak_severity": route.min_severity,
        "occurrences": 1,
        "first_seen_ms": now_ms,
        "at_ms": now_ms,
        "detail": f"a test of route {route.id}",
    }
    answer = channels.send(
        route.channel, route.target, route.secret, sample, settings.notify_timeout_s
    )
    print(f"route {route.id}: {answer}")


def _rule_scope(definition: dict[str, Any]) -> str:
    devices: list[str] = definition.get("devices") or []
    profiles: list[str] = definition.get("profiles") or []
    if devices:
        scope = "devices " + ", ".join(devices)
    else:
        scope = "profiles " + ", ".join(profiles) if profiles else "all devices"
    if definition.get("overrides"):
        scope += f" (instead of {definition['overrides']})"
    return scope


def _rule(conn: psycopg.Connection, args: argparse.Namespace) -> int:
    action = args.rule_action
    if action == "list":
        rules = stored_rules(conn)
        if args.json:
            print(bodies.dumps(bodies.rules(rules)))
            return 0
        print(f"{'id':<24} {'type':<10} {'severity':<9} {'state':<9} {'origin':<8} applies to")
        for r in rules:
            d = r.definition
            state = "enabled" if r.enabled and d.get("enabled", True) else "disabled"
            print(
                f"{r.id:<24} {d.get('type', '?'):<10} {d.get('severity', 'warning'):<9} "
                f"{state:<9} {'shipped' if r.builtin else 'own':<8} {_rule_scope(d)}"
            )
        print(f"{len(rules)} rule(s); a running engine applies changes within "
              "TWIN_ALERT_RULES_RELOAD_S (30 s)")  # fmt: skip
        return 0
    if action == "show":
        found = next((r for r in stored_rules(conn) if r.id == args.id), None)
        if found is None:
            raise UnknownItem(f"no alert rule {args.id!r}")
        shown = bodies.items([found])["items"][0] if args.json else found.definition
        print(bodies.dumps(shown))
        return 0
    if action == "set":
        if args.file == "-":
            text, source = sys.stdin.read(), "standard input"
        else:
            try:
                with open(args.file, encoding="utf-8") as f:
                    text, source = f.read(), args.file
            except OSError as exc:
                raise ConfigurationError(f"cannot read {args.file}: {exc.strerror}") from None
        parsed = parse_rules(text, source)
        save_rules(conn, parsed)
        print(f"{len(parsed)} rule(s) saved: {', '.join(r.id for r in parsed)}")
        return 0
    if action in ("enable", "disable"):
        set_rule_enabled(conn, args.id, action == "enable")
        print(f"alert rule {args.id}: {action}d")
        return 0
    deleted = remove_rule(conn, args.id)
    print(f"alert rule {args.id}: " + ("removed" if deleted else "shipped rule, disabled instead"))
    return 0
