"""Alert rules: what condition, on which devices, how severe, and when it has cleared.

A rule is plain data (stored as JSON in ``alert_rules``). ``condition`` judges one reading, event
or anomaly of one device and says whether the rule's condition holds now, how severe it is and
what was observed; the lifecycle (``twin.alerts.lifecycle``) turns that stream of verdicts into
alerts that open once, escalate, and resolve after the condition has stayed clear.

Types:

* ``threshold``: ``metric`` compared with ``levels`` (value → severity, the worst crossed wins),
  ``clear`` as the hysteresis level, held for ``sustain_s`` before it opens. With
  ``levels_from_profile`` the levels are the device profile's own thresholds for the metric
  (warning → the rule's severity, critical → critical) and ``clear`` lies ``clear_margin``
  short of the first, so one rule serves pumps, compressors and CNC machines alike;
* ``rate``: ``metric`` changing faster than ``per_min`` per minute (negative: falling faster),
  optionally only while ``when_metric`` is below ``when_below`` (e.g. parked);
* ``anomaly``: an anomaly of at least ``min_severity`` and ``min_score`` from the detectors
  (optionally of one ``metric`` or ``detector``), or ``count`` of them within ``window_s``;
* ``no_data``: the device silent longer than ``silence_s`` (judged against a clock);
* ``geofence``: a position ``inside`` or outside (``trigger`` enter / exit) a circle
  (``lat``, ``lon``, ``radius_m``) or a ``polygon`` of [lat, lon] points;
* ``dtc``: fault-code events, severity by the longest matching code ``families`` prefix.

Per-device overrides: a rule with ``overrides`` set to another rule's id replaces that rule on
the devices (or profiles) it applies to, e.g. a hotter threshold for one pump that runs hot by
design, while every other pump keeps the shipped rule.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from twin.errors import ProfileError
from twin.profiles import MetricSpec

SEVERITIES = ("info", "warning", "major", "critical")
RULE_TYPES = ("threshold", "rate", "anomaly", "no_data", "geofence", "dtc")


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


class Level(msgspec.Struct, frozen=True, array_like=True):
    value: float
    severity: str


class Rule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    type: str
    name: str = ""
    severity: str = "warning"
    enabled: bool = True
    profiles: tuple[str, ...] = ()
    """Profiles the rule applies to (empty: all)."""
    devices: tuple[str, ...] = ()
    """Devices the rule applies to (empty: all of its profiles)."""
    overrides: str = ""
    """The id of a rule this one replaces wherever this one applies."""
    clear_s: float = 60.0
    """Auto-resolve once the condition has stayed clear this long (device time)."""
    sustain_s: float = 0.0
    # threshold / rate
    metric: str = ""
    above: bool = True
    levels: tuple[Level, ...] = ()
    clear: float | None = None
    levels_from_profile: bool = False
    clear_margin: float = 0.0
    per_min: float = 0.0
    when_metric: str = ""
    when_below: float = 0.0
    # anomaly
    min_severity: str = "warning"
    min_score: float = 0.0
    detector: str = ""
    count: int = 1
    window_s: float = 300.0
    # no data
    silence_s: float = 300.0
    # geofence
    trigger: str = "exit"
    lat: float = 0.0
    lon: float = 0.0
    radius_m: float = 0.0
    polygon: tuple[tuple[float, float], ...] = ()
    # dtc
    families: Mapping[str, str] = msgspec.field(default_factory=dict)

    def check(self) -> None:
        where = f"alert rule {self.id!r}"
        if self.type not in RULE_TYPES:
            raise ProfileError(f"{where}: type must be one of {', '.join(RULE_TYPES)}")
        if self.severity not in SEVERITIES:
            raise ProfileError(f"{where}: severity must be one of {', '.join(SEVERITIES)}")
        if self.type in ("threshold", "rate") and not self.metric:
            raise ProfileError(f"{where}: needs a metric")
        if self.type == "threshold" and not (self.levels or self.levels_from_profile):
            raise ProfileError(
                f"{where}: needs levels [[value, severity], ...] or levels_from_profile"
            )
        if self.clear_margin < 0:
            raise ProfileError(f"{where}: clear_margin may not be negative")
        for level in self.levels:
            if level.severity not in SEVERITIES:
                raise ProfileError(f"{where}: level severity {level.severity!r} is unknown")
        if self.type == "geofence" and not (self.radius_m > 0 or len(self.polygon) >= 3):
            raise ProfileError(f"{where}: needs radius_m > 0 or a polygon of 3+ points")
        if self.type == "geofence" and self.trigger not in ("enter", "exit"):
            raise ProfileError(f"{where}: trigger must be enter or exit")
        if self.overrides == self.id:
            raise ProfileError(f"{where}: a rule cannot override itself")
        if self.clear_s < 0 or self.sustain_s < 0:
            raise ProfileError(f"{where}: clear_s and sustain_s may not be negative")

    def applies(self, device_id: str, profile: str) -> bool:
        if not self.enabled:
            return False
        if self.devices:
            return device_id in self.devices
        return not self.profiles or profile in self.profiles


class Verdict(msgspec.Struct, frozen=True, gc=False):
    """The rule's condition at one instant: holds or not, how badly, what was seen."""

    active: bool
    severity: str = "warning"
    observed: float | None = None
    detail: str = ""


def _haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(min(1.0, math.sqrt(a)))


def inside_polygon(lat: float, lon: float, polygon: Sequence[tuple[float, float]]) -> bool:
    """Ray casting on [lat, lon] vertices (fine for fences far smaller than a hemisphere)."""
    inside = False
    n = len(polygon)
    for i in range(n):
        (y1, x1), (y2, x2) = polygon[i], polygon[(i + 1) % n]
        if (y1 > lat) != (y2 > lat):
            x_cross = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
            if lon < x_cross:
                inside = not inside
    return inside


def with_profile_levels(rule: Rule, spec: MetricSpec | None) -> Rule | None:
    """The rule with its levels taken from a profile's thresholds for its metric (None: the
    profile sets none, so the rule has nothing to judge on this profile)."""
    if not rule.levels_from_profile:
        return rule
    if spec is None:
        return None
    warn, crit = (spec.warn_high, spec.crit_high) if rule.above else (spec.warn_low, spec.crit_low)
    levels = []
    if warn is not None:
        levels.append(Level(warn, rule.severity))
    if crit is not None:
        levels.append(Level(crit, "critical"))
    if not levels:
        return None
    first = levels[0].value
    clear = rule.clear
    if rule.clear_margin > 0:
        clear = first - rule.clear_margin if rule.above else first + rule.clear_margin
    return msgspec.structs.replace(rule, levels=tuple(levels), clear=clear)


def threshold(rule: Rule, x: float, was_active: bool) -> Verdict:
    crossed = [lv for lv in rule.levels if (x >= lv.value if rule.above else x <= lv.value)]
    if crossed:
        worst = max(crossed, key=lambda lv: severity_rank(lv.severity))
        return Verdict(True, worst.severity, x, f"{rule.metric} {x:g}")
    if was_active and rule.clear is not None:  # hysteresis: holds until past the clear level
        still = x > rule.clear if rule.above else x < rule.clear
        if still:
            return Verdict(True, "", x, f"{rule.metric} {x:g} (not yet below {rule.clear:g})")
    return Verdict(False, observed=x)


def rate(rule: Rule, per_min: float, when: float | None) -> Verdict:
    if rule.when_metric and (when is None or when >= rule.when_below):
        return Verdict(False, observed=per_min)
    fast = per_min <= rule.per_min if rule.per_min < 0 else per_min >= rule.per_min
    return Verdict(fast, rule.severity, per_min, f"{rule.metric} {per_min:+.3g}/min")


def geofence(rule: Rule, lat: float, lon: float) -> Verdict:
    if rule.radius_m > 0:
        inside = _haversine_m(rule.lat, rule.lon, lat, lon) <= rule.radius_m
    else:
        inside = inside_polygon(lat, lon, rule.polygon)
    active = inside if rule.trigger == "enter" else not inside
    where = "inside" if inside else "outside"
    return Verdict(
        active, rule.severity, None, f"{where} {rule.name or rule.id} at {lat:.5f},{lon:.5f}"
    )


def dtc_severity(rule: Rule, code: str) -> str:
    best, length = rule.severity, -1
    for prefix, severity in rule.families.items():
        if code.upper().startswith(prefix.upper()) and len(prefix) > length:
            best, length = severity, len(prefix)
    return best


def parse_rules(text: str, source: str = "rules") -> list[Rule]:
    """Rules from JSON (one object or a list) or TOML (``[[rules]]`` tables, or one rule's
    keys at the top level); every rule checked. A mistake raises ``ProfileError`` saying
    which rule and which field."""
    data: Any
    stripped = text.lstrip()
    try:
        if stripped.startswith(("{", "[")) and not stripped.startswith("[["):
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
            data = data.get("rules", data) if isinstance(data, dict) else data
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"{source}: not JSON or TOML: {exc}") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise ProfileError(f"{source}: no rules in it")
    rules = []
    for n, item in enumerate(items, 1):
        where = f"{source}: rule {item.get('id', n) if isinstance(item, dict) else n}"
        try:
            rule = msgspec.convert(item, Rule)
        except msgspec.ValidationError as exc:
            raise ProfileError(f"{where}: {exc}") from None
        try:
            rule.check()
        except ProfileError as exc:
            raise ProfileError(f"{source}: {exc}") from None
        rules.append(rule)
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise ProfileError(f"{source}: the same rule id twice")
    return rules
