"""Device profiles: which metrics a kind of device reports, in which unit, and what is plausible.

A profile gives each metric a *valid range* (outside it a value is a broken sensor or a bad
message, so the reading becomes a dead letter) and optional warning / critical thresholds
(inside the valid range but worth an operator's attention; used by alerting). Metrics that a
profile does not list fall back to :data:`METRIC_CATALOG`, the standard metric names of the
wire contract; metrics nobody knows are kept without a range check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from twin.errors import ProfileError

VEHICLE = "vehicle"
MACHINE = "machine"
GENERIC = "generic"
KINDS = (VEHICLE, MACHINE, GENERIC)


WATCHES = ("all", "rate", "falling", "rules")


class MetricSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Unit, valid range, thresholds of one metric, and which detectors watch it.

    ``watch``: ``all`` (a condition: level against the device's baseline, rate of change and
    stuck sensor), ``rate`` (only its rate of change), ``falling`` (only falling faster than
    usual: a level that should only drift down slowly, like fuel or brake pads) or ``rules``
    (operating state such as speed or load: only the thresholds apply).
    """

    unit: str
    valid_min: float
    valid_max: float
    warn_low: float | None = None
    warn_high: float | None = None
    crit_low: float | None = None
    crit_high: float | None = None
    watch: str = "all"

    def check(self, name: str) -> None:
        if self.watch not in WATCHES:
            raise ProfileError(f"{name}: watch must be one of {', '.join(WATCHES)}")
        if not self.valid_min < self.valid_max:
            raise ProfileError(f"{name}: valid range [{self.valid_min}, {self.valid_max}] is empty")
        for label in ("warn_low", "warn_high", "crit_low", "crit_high"):
            value = getattr(self, label)
            if value is not None and not self.valid_min <= value <= self.valid_max:
                raise ProfileError(f"{name}: {label}={value} lies outside the valid range")
        if (
            self.crit_high is not None
            and self.warn_high is not None
            and self.crit_high < self.warn_high
        ):
            raise ProfileError(f"{name}: crit_high is below warn_high")
        if (
            self.crit_low is not None
            and self.warn_low is not None
            and self.crit_low > self.warn_low
        ):
            raise ProfileError(f"{name}: crit_low is above warn_low")


class DeviceProfile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What one kind of device reports and how it is used.

    ``usage_medium_km_day`` / ``usage_high_km_day`` split vehicles into LOW / MEDIUM / HIGH
    usage; ``running_load_pct`` is the load above which a machine counts operating hours.
    """

    name: str
    kind: str
    description: str
    metrics: dict[str, MetricSpec]
    expected_interval_s: float = 1.0
    usage_medium_km_day: float = 50.0
    usage_high_km_day: float = 150.0
    running_load_pct: float = 5.0
    driver: str | None = None
    """The metric that sets the operating point (rpm, load): the level detectors judge other
    metrics against what they usually are at that point, not against one fixed baseline."""
    relations: tuple[str, ...] = ()
    """Metrics whose relation is watched together (flow, pressure and current of a pump):
    the relation layer reports them when each reads normally but together they do not."""

    def check(self) -> None:
        if self.kind not in KINDS:
            raise ProfileError(f"profile {self.name}: kind must be one of {', '.join(KINDS)}")
        if self.expected_interval_s <= 0:
            raise ProfileError(f"profile {self.name}: expected_interval_s must be positive")
        if not 0 <= self.usage_medium_km_day <= self.usage_high_km_day:
            raise ProfileError(f"profile {self.name}: usage thresholds are out of order")
        for name, spec in self.metrics.items():
            spec.check(f"profile {self.name}, metric {name}")
        rel = self.relations
        if rel and (len(rel) < 2 or len(set(rel)) != len(rel)):
            raise ProfileError(f"profile {self.name}: relations names two or more metrics, once")
        unknown = [m for m in rel if self.spec(m) is None]
        if unknown:
            raise ProfileError(f"profile {self.name}: relations names unknown {', '.join(unknown)}")

    def spec(self, metric: str) -> MetricSpec | None:
        return self.metrics.get(metric) or METRIC_CATALOG.get(metric)

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def from_json(cls, raw: bytes | str) -> DeviceProfile:
        profile = msgspec.json.decode(raw, type=cls)
        profile.check()
        return profile


def _m(unit: str, lo: float, hi: float, watch: str = "all", **thresholds: float) -> MetricSpec:
    return MetricSpec(unit=unit, valid_min=lo, valid_max=hi, watch=watch, **thresholds)


METRIC_CATALOG: dict[str, MetricSpec] = {
    # vehicles
    "speed_kmh": _m("km/h", 0, 400, "rules"),
    "rpm": _m("rpm", 0, 100_000),
    "coolant_temp_c": _m("°C", -60, 200),
    "fuel_level_pct": _m("%", 0, 100, "falling"),
    "odometer_km": _m("km", 0, 10_000_000, "rules"),
    "battery_v": _m("V", 0, 60),
    "brake_pad_mm": _m("mm", 0, 40, "falling"),
    "oil_pressure_kpa": _m("kPa", 0, 2000),
    "lat": _m("°", -90, 90, "rules"),
    "lon": _m("°", -180, 180, "rules"),
    "heading_deg": _m("°", 0, 360, "rules"),
    # machines
    "temperature_c": _m("°C", -60, 500),
    "vibration_mm_s": _m("mm/s", 0, 500),
    "load_pct": _m("%", 0, 200, "rules"),
    "pressure_bar": _m("bar", -1, 1000),
    "power_kw": _m("kW", -100, 100_000),
    "current_a": _m("A", -10, 100_000),
    "flow_rate_m3h": _m("m³/h", 0, 1_000_000),
}
"""Standard metric names with physically possible ranges, used when a profile is silent."""


def _vehicle_metrics(
    *, max_speed: float, max_rpm: float, battery_nominal: float, pad_mm: float
) -> dict[str, MetricSpec]:
    b = battery_nominal / 12.0
    return {
        "speed_kmh": _m(
            "km/h", 0, max_speed * 1.3, "rules", warn_high=max_speed * 0.85, crit_high=max_speed
        ),
        "rpm": _m("rpm", 0, max_rpm * 1.5, "rules", warn_high=max_rpm * 0.85, crit_high=max_rpm),
        "coolant_temp_c": _m("°C", -50, 150, warn_high=105, crit_high=115),
        "fuel_level_pct": _m("%", 0, 100, "falling", warn_low=15, crit_low=5),
        "odometer_km": _m("km", 0, 5_000_000, "rules"),
        "battery_v": _m(
            "V",
            0,
            40 * b,
            warn_low=11.9 * b,
            crit_low=11.2 * b,
            warn_high=14.8 * b,
            crit_high=15.5 * b,
        ),
        "brake_pad_mm": _m("mm", 0, pad_mm * 2, "falling", warn_low=3, crit_low=2),
        "oil_pressure_kpa": _m("kPa", 0, 1200, warn_low=100, crit_low=60),
        "lat": _m("°", -90, 90, "rules"),
        "lon": _m("°", -180, 180, "rules"),
        "heading_deg": _m("°", 0, 360, "rules"),
    }


BUILTIN_PROFILES: tuple[DeviceProfile, ...] = (
    DeviceProfile(
        name="passenger_car",
        kind=VEHICLE,
        driver="rpm",
        description="Petrol or diesel passenger car, 12 V electrics",
        metrics=_vehicle_metrics(max_speed=200, max_rpm=6500, battery_nominal=12, pad_mm=12),
        expected_interval_s=1.0,
        usage_medium_km_day=40,
        usage_high_km_day=100,
    ),
    DeviceProfile(
        name="truck",
        kind=VEHICLE,
        driver="rpm",
        description="Heavy goods vehicle, diesel, 24 V electrics",
        metrics=_vehicle_metrics(max_speed=110, max_rpm=2800, battery_nominal=24, pad_mm=20),
        expected_interval_s=5.0,
        usage_medium_km_day=200,
        usage_high_km_day=500,
    ),
    DeviceProfile(
        name="pump",
        kind=MACHINE,
        driver="load_pct",
        description="Centrifugal pump with motor (ISO 10816 class II vibration limits)",
        metrics={
            "temperature_c": _m("°C", -40, 200, warn_high=80, crit_high=95),
            "vibration_mm_s": _m("mm/s", 0, 100, warn_high=4.5, crit_high=7.1),
            "load_pct": _m("%", 0, 150, "rules", warn_high=95, crit_high=110),
            "pressure_bar": _m("bar", -1, 60, warn_high=16, crit_high=20, warn_low=1.0),
            "rpm": _m("rpm", 0, 6000, warn_high=3300, crit_high=3600),
            "power_kw": _m("kW", -1, 500, warn_high=75, crit_high=90),
            "current_a": _m("A", -1, 1000, warn_high=140, crit_high=160),
            "flow_rate_m3h": _m("m³/h", 0, 2000, warn_low=20),
        },
        expected_interval_s=1.0,
        relations=("load_pct", "power_kw", "current_a", "flow_rate_m3h"),
    ),
    DeviceProfile(
        name="compressor",
        kind=MACHINE,
        driver="load_pct",
        description="Rotary screw air compressor",
        metrics={
            "temperature_c": _m("°C", -40, 250, warn_high=100, crit_high=110),
            "vibration_mm_s": _m("mm/s", 0, 100, warn_high=7.1, crit_high=11.0),
            "load_pct": _m("%", 0, 150, "rules", warn_high=95, crit_high=110),
            "pressure_bar": _m("bar", -1, 50, warn_high=10.5, crit_high=12, warn_low=5),
            "rpm": _m("rpm", 0, 8000, warn_high=3600, crit_high=4000),
            "power_kw": _m("kW", -1, 1000, warn_high=110, crit_high=130),
            "current_a": _m("A", -1, 2000, warn_high=200, crit_high=230),
        },
        expected_interval_s=1.0,
    ),
    DeviceProfile(
        name="cnc_machine",
        kind=MACHINE,
        driver="load_pct",
        description="CNC milling centre: spindle, axes and coolant",
        metrics={
            "temperature_c": _m("°C", -20, 150, warn_high=55, crit_high=65),
            "vibration_mm_s": _m("mm/s", 0, 100, warn_high=2.8, crit_high=4.5),
            "load_pct": _m("%", 0, 150, "rules", warn_high=90, crit_high=105),
            "rpm": _m("rpm", 0, 40_000, warn_high=18_000, crit_high=20_000),
            "power_kw": _m("kW", -1, 200, warn_high=25, crit_high=30),
            "current_a": _m("A", -1, 500, warn_high=50, crit_high=60),
        },
        expected_interval_s=1.0,
    ),
    DeviceProfile(
        name="conveyor",
        kind=MACHINE,
        driver="load_pct",
        description="Belt conveyor with drive motor",
        metrics={
            "temperature_c": _m("°C", -40, 150, warn_high=70, crit_high=85),
            "vibration_mm_s": _m("mm/s", 0, 100, warn_high=4.5, crit_high=7.1),
            "load_pct": _m("%", 0, 150, "rules", warn_high=95, crit_high=110),
            "rpm": _m("rpm", 0, 3000, warn_high=1600, crit_high=1800),
            "power_kw": _m("kW", -1, 300, warn_high=40, crit_high=50),
            "current_a": _m("A", -1, 500, warn_high=80, crit_high=95),
        },
        expected_interval_s=2.0,
    ),
    DeviceProfile(
        name=GENERIC,
        kind=GENERIC,
        description="Device whose profile is not known yet: standard metric ranges only",
        metrics={},
        expected_interval_s=5.0,
    ),
)


class ProfileBook:
    """Profiles by name, with the generic profile for devices that name none or an unknown one."""

    def __init__(self, profiles: Iterable[DeviceProfile] = BUILTIN_PROFILES) -> None:
        self._by_name: dict[str, DeviceProfile] = {}
        for profile in profiles:
            profile.check()
            self._by_name[profile.name] = profile
        if GENERIC not in self._by_name:
            self._by_name[GENERIC] = next(p for p in BUILTIN_PROFILES if p.name == GENERIC)

    def get(self, name: str | None) -> DeviceProfile:
        if name is None:
            return self._by_name[GENERIC]
        return self._by_name.get(name) or self._by_name[GENERIC]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def as_mapping(self) -> Mapping[str, DeviceProfile]:
        return dict(self._by_name)


def profile_from_mapping(data: Mapping[str, Any]) -> DeviceProfile:
    """Build and check a profile from plain data (a database row, a JSON file)."""
    profile = msgspec.convert(dict(data), type=DeviceProfile)
    profile.check()
    return profile
