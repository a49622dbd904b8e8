"""The alert rules in force, and which of them apply to a device."""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from typing import NamedTuple

import msgspec

from twin.alerts.rules import Rule, with_profile_levels
from twin.profiles import ProfileBook

JUDGED_BY_READINGS = frozenset({"threshold", "rate", "geofence", "no_data"})


class ReadingRules(NamedTuple):
    """What a reading is judged by, worked out once per profile."""

    judged: tuple[tuple[Rule, float], ...]
    """The rules a reading judges, in order, each with its trip point: a threshold rule's
    condition can hold only at or past it (its lowest level above, its highest below); a
    reading short of it leaves an idle alert idle."""
    rate_metrics: tuple[str, ...]
    """The metrics whose last value a rate rule compares with."""


def _trip(rule: Rule) -> float:
    if rule.type != "threshold":
        return math.nan
    if not rule.levels:
        return math.inf if rule.above else -math.inf
    values = [lv.value for lv in rule.levels]
    return min(values) if rule.above else max(values)


class _Rules(msgspec.Struct, frozen=True):
    rules: tuple[Rule, ...]
    version: int
    named_devices: frozenset[str]
    cache: dict[tuple[str, str], tuple[Rule, ...]]
    silences: dict[tuple[str, str], tuple[tuple[str, int], ...]]
    readings: dict[tuple[str, str], ReadingRules]


class RuleBook:
    """The rules in force; replaced whole when the stored rules change (no restart).

    The rules that apply to a device are worked out once per profile (or per device, for the
    devices a rule names) and kept until the rules change."""

    def __init__(self, rules: Iterable[Rule] = (), profiles: ProfileBook | None = None) -> None:
        self.profiles = profiles or ProfileBook()
        self._view = _view(rules)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._view.rules

    @property
    def version(self) -> int:
        """A digest of the rules' content: the same rules give the same version in any
        process, so a twin restored from a snapshot knows whether the rules changed since."""
        return self._view.version

    def replace(self, rules: Iterable[Rule]) -> None:
        self._view = _view(rules)  # one assignment: a reader sees the old rules or the new

    def applicable(self, device_id: str, profile: str) -> tuple[Rule, ...]:
        view = self._view
        key = (device_id if device_id in view.named_devices else "", profile)
        found = view.cache.get(key)
        if found is None:
            rules = [r for r in view.rules if r.applies(device_id, profile)]
            replaced = {r.overrides for r in rules if r.overrides}
            spec = self.profiles.get(profile).spec
            resolved = (
                with_profile_levels(r, spec(r.metric)) for r in rules if r.id not in replaced
            )
            found = view.cache[key] = tuple(r for r in resolved if r is not None)
        return found

    def reading_rules(self, device_id: str, profile: str) -> ReadingRules:
        view = self._view
        key = (device_id if device_id in view.named_devices else "", profile)
        found = view.readings.get(key)
        if found is None:
            rules = self.applicable(device_id, profile)
            found = view.readings[key] = ReadingRules(
                tuple((r, _trip(r)) for r in rules if r.type in JUDGED_BY_READINGS),
                tuple(dict.fromkeys(r.metric for r in rules if r.type == "rate")),
            )
        return found

    def silences(self, device_id: str, profile: str) -> tuple[tuple[str, int], ...]:
        """The no-data rules that apply, as (rule id, silence in ms): a twin's timer is worked
        out after nearly every batch, so without walking every rule."""
        view = self._view
        key = (device_id if device_id in view.named_devices else "", profile)
        found = view.silences.get(key)
        if found is None:
            found = view.silences[key] = tuple(
                (r.id, int(r.silence_s * 1000))
                for r in self.applicable(device_id, profile)
                if r.type == "no_data"
            )
        return found


def _view(rules: Iterable[Rule]) -> _Rules:
    rules = tuple(rules)
    named = frozenset(d for r in rules for d in r.devices)
    version = zlib.crc32(msgspec.json.encode(sorted(rules, key=lambda r: r.id)))
    return _Rules(rules, version, named, {}, {}, {})
