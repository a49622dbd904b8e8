"""Reference data of maintenance recommendations: parts, dealers and their stock, seasonal and
terrain adjustments, business rules, and what a device's service history says.

Plain records, checked on construction by ``check()``; stored in PostgreSQL (``storage``) and
shipped with realistic defaults (``twin.maintenance.defaults``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import msgspec

from twin.errors import ConfigurationError

CATEGORIES = (
    "Brakes",
    "Engine",
    "Electrical",
    "Filters",
    "Tyres",
    "Cooling",
    "Suspension",
    "Bearings",
    "Seals",
    "Belts",
    "Lubrication",
    "Hydraulics",
)
USAGE_CATEGORIES = ("LOW", "MEDIUM", "HIGH")


class Evidence(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An anomaly that says a part is wearing: on ``metric`` (any detector unless named), of
    one of ``kinds`` (``high``, ``low``, ``rising``, ``falling``, ``stuck``; none: any)."""

    metric: str
    kinds: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()

    def matches(self, detector: str, metric: str, kind: str) -> bool:
        return (
            metric == self.metric
            and (not self.kinds or kind in self.kinds)
            and (not self.detectors or detector in self.detectors)
        )


class Part(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A part or a maintenance task, with when it is due."""

    code: str
    name: str
    category: str
    oem_number: str = ""
    cost: float = 0.0
    """Estimated cost, parts and labour (the catalog's currency)."""
    interval_km: float | None = None
    interval_months: float | None = None
    interval_hours: float | None = None
    """Replace after whichever comes first: distance, time, or operating hours."""
    critical: bool = False
    seasonal: bool = False
    terrain_specific: bool = False
    kinds: tuple[str, ...] = ("vehicle",)
    profiles: tuple[str, ...] = ()
    """The device profiles it fits (none: every device of its kinds)."""
    evidence: tuple[Evidence, ...] = ()

    def check(self) -> None:
        where = f"part {self.code!r}"
        if not self.code or not self.name:
            raise ConfigurationError(f"{where}: needs a code and a name")
        if self.category not in CATEGORIES:
            raise ConfigurationError(f"{where}: category must be one of {', '.join(CATEGORIES)}")
        intervals = (self.interval_km, self.interval_months, self.interval_hours)
        if all(i is None for i in intervals):
            raise ConfigurationError(f"{where}: needs interval_km, interval_months or _hours")
        if any(i is not None and i <= 0 for i in intervals) or self.cost < 0:
            raise ConfigurationError(f"{where}: intervals must be positive and cost not negative")

    def fits(self, kind: str, profile: str) -> bool:
        return kind in self.kinds and (not self.profiles or profile in self.profiles)


class Dealer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: str
    name: str
    region: str
    city: str = ""
    active: bool = True


class Stock(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One part at one dealer."""

    part: str
    dealer: str
    on_hand: int
    minimum: int = 0
    reorder_point: int = 0

    def check(self) -> None:
        if min(self.on_hand, self.minimum, self.reorder_point) < 0:
            raise ConfigurationError(f"stock of {self.part} at {self.dealer}: negative level")


class Adjustment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A seasonal or terrain factor for some parts (none: all the seasonal / terrain-specific
    ones) in some regions (none: everywhere)."""

    key: str
    """The season (SUMMER, MONSOON, WINTER) or terrain (URBAN, HILLY, HIGHWAY)."""
    factor: float
    parts: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    note: str = ""

    def check(self) -> None:
        if self.factor <= 0:
            raise ConfigurationError(f"adjustment {self.key}: factor must be positive")

    def applies(self, part: Part, region: str) -> bool:
        if self.regions and region not in self.regions:
            return False
        if self.parts or self.categories:
            return part.code in self.parts or part.category in self.categories
        return True


class BusinessRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``when`` every condition holds, ``then`` change the recommendation.

    Conditions compare a fact of the device or the part (``usage_category``, ``terrain``,
    ``season``, ``region``, ``kind``, ``profile``, ``model``, ``part``, ``category``,
    ``critical``, ``wear``, ``confidence``, ``cost``) with a value, or with an operator:
    ``{"wear": {">=": 0.8}}``, ``{"category": {"in": ["Brakes", "Tyres"]}}``.
    Actions: ``multiply`` (the confidence), ``add`` (points), ``at_least`` / ``at_most``
    (points), ``exclude`` (true). Rules apply by ``priority`` (higher first), each once.
    """

    name: str
    when: Mapping[str, Any]
    then: Mapping[str, Any]
    priority: int = 0
    active: bool = True
    effective_from: datetime | None = None
    effective_until: datetime | None = None

    def check(self) -> None:
        unknown = set(self.then) - {"multiply", "add", "at_least", "at_most", "exclude"}
        if unknown:
            raise ConfigurationError(f"business rule {self.name!r}: unknown actions {unknown}")
        if not self.then:
            raise ConfigurationError(f"business rule {self.name!r}: no action")
        if self.priority < 0:
            raise ConfigurationError(f"business rule {self.name!r}: priority must be 0 or more")

    def in_force(self, now: datetime) -> bool:
        if not self.active:
            return False
        if self.effective_from is not None and now < self.effective_from:
            return False
        return self.effective_until is None or now < self.effective_until


class Schedule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A maintenance schedule: for one vehicle model or machine type (a device's ``model`` or
    ``profile``), a part's own intervals instead of the catalog's."""

    applies_to: str
    part: str
    interval_km: float | None = None
    interval_months: float | None = None
    interval_hours: float | None = None

    def check(self) -> None:
        intervals = (self.interval_km, self.interval_months, self.interval_hours)
        if all(i is None for i in intervals) or any(i is not None and i <= 0 for i in intervals):
            raise ConfigurationError(
                f"schedule of {self.part} for {self.applies_to}: needs positive intervals"
            )


class Replacement(msgspec.Struct, frozen=True, kw_only=True):
    """When a part was last replaced on a device (from service history)."""

    part: str
    at: datetime
    odometer_km: float | None = None
    operating_hours: float | None = None


class Catalog:
    """Everything the recommendation engine reads, indexed for it."""

    def __init__(
        self,
        parts: Iterable[Part],
        dealers: Iterable[Dealer] = (),
        stock: Iterable[Stock] = (),
        seasons: Iterable[Adjustment] = (),
        terrains: Iterable[Adjustment] = (),
        rules: Iterable[BusinessRule] = (),
        schedules: Iterable[Schedule] = (),
    ) -> None:
        self.parts = {p.code: p for p in parts}
        self.schedules = {(s.applies_to, s.part): s for s in schedules}
        self.dealers = {d.code: d for d in dealers}
        self.stock = {(s.part, s.dealer): s for s in stock}
        self.seasons = tuple(seasons)
        self.terrains = tuple(terrains)
        self.rules = tuple(sorted(rules, key=lambda r: -r.priority))
        for part in self.parts.values():
            part.check()
        for level in self.stock.values():
            level.check()
        for adjustment in (*self.seasons, *self.terrains):
            adjustment.check()
        for rule in self.rules:
            rule.check()
        for schedule in self.schedules.values():
            schedule.check()

    def part_for(self, part: Part, model: str, profile: str) -> Part:
        """The part with the intervals of the device's model (or else type) schedule."""
        schedule = self.schedules.get((model, part.code)) or self.schedules.get(
            (profile, part.code)
        )
        if schedule is None:
            return part
        return msgspec.structs.replace(
            part,
            interval_km=schedule.interval_km,
            interval_months=schedule.interval_months,
            interval_hours=schedule.interval_hours,
        )
