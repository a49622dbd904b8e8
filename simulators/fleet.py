"""Simulated vehicles and machines with physically coherent signals.

Vehicles follow drive cycles (idle, urban, highway, weighted by terrain) where rpm follows speed
and gear, coolant warms up from ambient (set by the season) towards a load-dependent
temperature, fuel falls with distance (faster uphill) and is refilled, the odometer integrates
speed, brake pads wear with braking and the position moves along the heading; now and then a
vehicle reports a fault code or a service. Machines run around per-type baselines in a
continuous, cyclic or intermittent pattern. Every device draws from its own seeded
``random.Random``: same seed, same fleet, same signals.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

VEHICLE_MODELS = (
    ("passenger_car", "Corolla"),
    ("passenger_car", "Golf"),
    ("passenger_car", "Swift"),
    ("truck", "Actros"),
    ("truck", "FH16"),
)
MACHINE_TYPES = ("pump", "compressor", "cnc_machine", "conveyor")
REGIONS = ("NORTH", "SOUTH", "EAST", "WEST")
TERRAINS = ("URBAN", "HILLY", "HIGHWAY")
SEASONS = ("SUMMER", "MONSOON", "WINTER")
PATTERNS = ("CONTINUOUS", "CYCLIC", "INTERMITTENT")
_GEAR_RATIOS = (0.0, 3.6, 2.1, 1.4, 1.0, 0.8, 0.65)
_AMBIENT_C = {"SUMMER": (32.0, 4.0), "MONSOON": (26.0, 2.5), "WINTER": (4.0, 5.0)}
_TERRAIN_PHASES = {  # idle, urban, highway weights
    "URBAN": (0.25, 0.6, 0.15),
    "HILLY": (0.2, 0.5, 0.3),
    "HIGHWAY": (0.1, 0.25, 0.65),
}
DTC_CODES = ("P0217", "P0300", "P0420", "P0171", "P0562", "C0035", "B1000", "U0100")
"""Fault codes a vehicle reports now and then (engine, chassis, body, network families)."""
SERVICE_PARTS = (("BRK-PAD-F", "BRK-PAD-R"), ("OIL-FLT", "ENG-OIL"), ("AIR-FLT",), ("BAT-12V",))
EVENT_PROBABILITY = {"dtc": 0.0004, "service": 0.0001}
"""Chance per reading that a vehicle also sends a fault-code or a service event."""


@dataclass
class Vehicle:
    """A vehicle on drive cycles: idle, urban and highway phases, weighted by terrain."""

    device_id: str
    profile: str
    model: str
    rng: random.Random
    region: str = "NORTH"
    terrain: str = "URBAN"
    season: str = "SUMMER"
    speed: float = 0.0
    target: float = 0.0
    phase_left_s: float = 0.0
    odometer: float = 0.0
    fuel: float = 80.0
    coolant: float = 20.0
    ambient: float = 20.0
    battery_health: float = 1.0
    brake_pad: float = 10.0
    lat: float = 52.52
    lon: float = 13.40
    heading: float = 0.0
    pending_events: list[dict[str, Any]] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)

    kind = "vehicle"

    def __post_init__(self) -> None:
        r = self.rng
        truck = self.profile == "truck"
        mean, spread = _AMBIENT_C[self.season]
        self.ambient = r.gauss(mean, spread)
        self.coolant = self.ambient
        self.odometer = r.uniform(1_000, 400_000 if truck else 120_000)
        self.fuel = r.uniform(30, 95)
        self.lat += r.uniform(-0.3, 0.3)
        self.lon += r.uniform(-0.5, 0.5)
        self.heading = r.uniform(0, 360)
        self.brake_pad = r.uniform(6, 20) if truck else r.uniform(4, 12)
        self.attributes = {
            "kind": "vehicle", "profile": self.profile, "model": self.model,
            "vin": f"SIM{r.randrange(10**13):013d}", "dealer_code": f"DLR{r.randrange(1, 40):03d}",
            "region_code": self.region, "terrain_type": self.terrain, "season_code": self.season,
        }  # fmt: skip

    @property
    def nominal_v(self) -> float:
        return 12.0 if self.profile != "truck" else 24.0

    def step(self, dt: float) -> dict[str, float]:
        r = self.rng
        truck = self.profile == "truck"
        self.phase_left_s -= dt
        if self.phase_left_s <= 0:
            phase = r.choices(("idle", "urban", "highway"), _TERRAIN_PHASES[self.terrain])[0]
            top = 90.0 if truck else 120.0
            self.target = {"idle": 0.0, "urban": r.uniform(20, 55), "highway": r.uniform(80, top)}[
                phase
            ]
            self.phase_left_s = r.uniform(20, 180)
        accel = max(-4.0, min(2.5, (self.target - self.speed) * 0.3)) + r.gauss(0, 0.3)
        braking = accel < -1.0
        self.speed = max(0.0, self.speed + accel * dt * 3.6)
        km = self.speed * dt / 3600.0
        self.odometer += km
        climb = 1.4 if self.terrain == "HILLY" else 1.0
        self.fuel = max(0.0, self.fuel - km * (0.09 if truck else 0.02) * climb)
        if self.fuel < 8 and r.random() < 0.02:
            self.fuel = r.uniform(85, 100)  # refuel
        load = min(1.0, (0.15 + self.speed / 140 + max(0.0, accel) * 0.2) * climb)
        target_temp = 84 + 9 * load + (self.ambient - 20) * 0.15
        warm = 0.02 if self.coolant < 75 else 0.1
        self.coolant += (target_temp - self.coolant) * min(1.0, warm * dt) + r.gauss(0, 0.05)
        if braking:
            wear = 0.00002 * (2.0 if self.terrain == "URBAN" else 1.0)
            self.brake_pad = max(0.5, self.brake_pad - wear * dt * abs(accel))
        gear = min(6, 1 + int(self.speed // 22))
        rpm = 800.0 if self.speed < 2 else 800 + self.speed * _GEAR_RATIOS[gear] * 28
        if truck:
            rpm *= 0.45
        cold = 0.25 if self.ambient < 5 else 0.0  # a cold battery sags
        charging = 14.2 - cold if rpm > 0 else 12.6 - cold  # the alternator charges while it runs
        volts = charging * self.battery_health * self.nominal_v / 12.0
        self.heading = (self.heading + r.gauss(0, 2.0)) % 360
        rad = math.radians(self.heading)
        self.lat += km / 111.0 * math.cos(rad)
        self.lon += km / (111.0 * max(0.2, math.cos(math.radians(self.lat)))) * math.sin(rad)
        self._maybe_events(r)
        return {
            "speed_kmh": round(self.speed, 2), "rpm": round(rpm, 0),
            "coolant_temp_c": round(self.coolant, 2), "fuel_level_pct": round(self.fuel, 2),
            "odometer_km": round(self.odometer, 3), "battery_v": round(volts + r.gauss(0, 0.03), 2),
            "brake_pad_mm": round(self.brake_pad, 3),
            "oil_pressure_kpa": round(150 + rpm * 0.08 + r.gauss(0, 3), 1),
            "lat": round(self.lat, 6), "lon": round(self.lon, 6),
            "heading_deg": round(self.heading, 1),
        }  # fmt: skip

    def _maybe_events(self, r: random.Random) -> None:
        roll = r.random()
        if roll < EVENT_PROBABILITY["dtc"]:
            self.pending_events.append({"type": "dtc", "code": r.choice(DTC_CODES)})
        elif roll < EVENT_PROBABILITY["dtc"] + EVENT_PROBABILITY["service"]:
            parts = list(r.choice(SERVICE_PARTS))
            if "BRK-PAD-F" in parts:
                self.brake_pad = 20.0 if self.profile == "truck" else 12.0
            if "BAT-12V" in parts:
                self.battery_health = 1.0
            self.pending_events.append(
                {
                    "type": "service",
                    "odometer_km": round(self.odometer, 1),
                    "parts_replaced": parts,
                }
            )

    def take_events(self) -> list[dict[str, Any]]:
        events, self.pending_events = self.pending_events, []
        return events


_MACHINE_BASE: dict[str, dict[str, float]] = {
    "pump": {"temperature_c": 55, "vibration_mm_s": 2.2, "pressure_bar": 8, "rpm": 2950,
             "power_kw": 45, "current_a": 80, "flow_rate_m3h": 120},
    "compressor": {"temperature_c": 75, "vibration_mm_s": 3.5, "pressure_bar": 7.5, "rpm": 2980,
                   "power_kw": 75, "current_a": 130},
    "cnc_machine": {"temperature_c": 35, "vibration_mm_s": 1.2, "rpm": 12000, "power_kw": 15,
                    "current_a": 28},
    "conveyor": {"temperature_c": 40, "vibration_mm_s": 2.0, "rpm": 1450, "power_kw": 18,
                 "current_a": 35},
}  # fmt: skip
_LOAD_SCALED = ("power_kw", "current_a", "flow_rate_m3h")
_NOISE = {"vibration_mm_s": 0.08, "temperature_c": 0.005}
_MACHINE_PATTERN = {"pump": "CONTINUOUS", "compressor": "INTERMITTENT", "cnc_machine": "CYCLIC"}


@dataclass
class Machine:
    """A machine around its type's baseline, in a CONTINUOUS, CYCLIC or INTERMITTENT pattern.

    Temperature follows load with thermal inertia and cools to ambient when idle; vibration,
    pressure and rpm drop to zero when stopped.
    """

    device_id: str
    profile: str
    rng: random.Random
    pattern: str = "CYCLIC"
    t: float = 0.0
    cycle_s: float = 600.0
    running: bool = True
    state_left_s: float = 0.0
    temperature: float = 20.0
    ambient: float = 20.0
    vibration_drift: float = 0.0
    attributes: dict[str, Any] = field(default_factory=dict)

    kind = "machine"

    def __post_init__(self) -> None:
        r = self.rng
        self.cycle_s = r.uniform(300, 1800)
        self.t = r.uniform(0, self.cycle_s)
        self.ambient = r.uniform(18, 28)
        self.temperature = _MACHINE_BASE[self.profile]["temperature_c"]
        self.state_left_s = r.uniform(60, 600)
        self.attributes = {
            "kind": "machine",
            "profile": self.profile,
            "model": f"{self.profile.upper()}-{r.randrange(100, 999)}",
            "site": f"plant-{r.randrange(1, 4)}",
            "pattern": self.pattern,
        }

    def _load(self, dt: float) -> float:
        r = self.rng
        if self.pattern == "INTERMITTENT":
            self.state_left_s -= dt
            if self.state_left_s <= 0:
                self.running = not self.running
                self.state_left_s = r.uniform(120, 600) if self.running else r.uniform(30, 180)
            return r.uniform(70, 85) if self.running else 0.0
        if self.pattern == "CONTINUOUS":
            return 75 + r.gauss(0, 2)
        return 60 + 20 * math.sin(2 * math.pi * self.t / self.cycle_s) + r.gauss(0, 2)

    def step(self, dt: float) -> dict[str, float]:
        r = self.rng
        self.t += dt
        load = max(0.0, min(110.0, self._load(dt)))
        base = _MACHINE_BASE[self.profile]
        f = load / 75.0
        target = self.ambient + (base["temperature_c"] - self.ambient) * (0.4 + 0.6 * f)
        if load == 0:
            target = self.ambient
        self.temperature += (target - self.temperature) * min(1.0, 0.01 * dt)
        out = {"load_pct": round(load, 2)}
        for name, value in base.items():
            noise = _NOISE.get(name, 0.02)
            if name == "temperature_c":
                v = self.temperature
            elif name in _LOAD_SCALED:
                v = value * f
            elif load == 0:
                v = 0.0
            else:
                v = value
            if name == "vibration_mm_s" and load > 0:
                v += self.vibration_drift
            out[name] = round(max(0.0, v * (1 + r.gauss(0, noise))), 3)
        return out

    def take_events(self) -> list[dict[str, Any]]:
        return []


Device = Vehicle | Machine


def make_fleet(
    count: int,
    seed: int = 1,
    vehicle_share: float = 0.6,
    season: str = "SUMMER",
    id_prefix: str = "",
) -> list[Device]:
    """``count`` devices, ``vehicle_share`` of them vehicles, deterministic for ``seed``.

    ``id_prefix`` goes in front of every device id (``veh-00001`` → ``{id_prefix}veh-00001``),
    so separate runs can share a database without sharing devices.
    """
    rng = random.Random(seed)
    fleet: list[Device] = []
    vehicles = round(count * vehicle_share)
    for i in range(count):
        dev_rng = random.Random(rng.getrandbits(64))
        if i < vehicles:
            profile, model = VEHICLE_MODELS[i % len(VEHICLE_MODELS)]
            fleet.append(
                Vehicle(
                    f"{id_prefix}veh-{i:05d}",
                    profile,
                    model,
                    dev_rng,
                    region=REGIONS[i % len(REGIONS)],
                    terrain=TERRAINS[(i // len(VEHICLE_MODELS)) % 3],
                    season=season,
                )
            )
        else:
            profile = MACHINE_TYPES[i % len(MACHINE_TYPES)]
            pattern = _MACHINE_PATTERN.get(profile, PATTERNS[(i // 4) % 3])
            fleet.append(Machine(f"{id_prefix}mac-{i:05d}", profile, dev_rng, pattern=pattern))
    return fleet


BAD_PAYLOADS: tuple[tuple[str, bytes], ...] = (
    ("bad_json", b'{"ts": 17636832, "values": {"speed_kmh": 5'),
    ("bad_type", b'{"values": {"speed_kmh": "fast"}}'),
    ("non_finite", b'{"values": {"speed_kmh": 1e999}}'),
    ("bad_ts", b'{"ts": "yesterday", "values": {"speed_kmh": 1}}'),
    ("ts_too_old", b'{"ts": 1000, "values": {"speed_kmh": 1}}'),
    ("bad_shape", b'"hello"'),
    ("out_of_range", b'{"values": {"coolant_temp_c": 900}}'),
)
"""One malformed payload per class of bad input, with the dead-letter reason it must get."""
