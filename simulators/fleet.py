"""Simulated vehicles and machines with physically coherent signals.

Vehicles follow drive cycles (idle, urban, highway) where rpm follows speed and gear, coolant
warms up towards a load-dependent temperature, fuel falls with distance, the odometer integrates
speed and the position moves along the heading. Machines run around per-type baselines with a
cyclic load. Everything is driven by one seeded ``random.Random``: same seed, same fleet.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

VEHICLE_MODELS = (("passenger_car", "Corolla"), ("passenger_car", "Golf"), ("truck", "Actros"))
MACHINE_TYPES = ("pump", "compressor", "cnc_machine", "conveyor")
REGIONS = ("NORTH", "SOUTH", "EAST", "WEST")
TERRAINS = ("URBAN", "HILLY", "HIGHWAY")
_GEAR_RATIOS = (0.0, 3.6, 2.1, 1.4, 1.0, 0.8, 0.65)


@dataclass
class Vehicle:
    device_id: str
    profile: str
    model: str
    rng: random.Random
    region: str = "NORTH"
    terrain: str = "URBAN"
    speed: float = 0.0
    target: float = 0.0
    phase_left_s: float = 0.0
    odometer: float = 0.0
    fuel: float = 80.0
    coolant: float = 20.0
    battery: float = 12.6
    brake_pad: float = 10.0
    lat: float = 52.52
    lon: float = 13.40
    heading: float = 0.0
    attributes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        r = self.rng
        self.odometer = r.uniform(1_000, 120_000)
        self.fuel = r.uniform(30, 95)
        self.lat += r.uniform(-0.3, 0.3)
        self.lon += r.uniform(-0.5, 0.5)
        self.heading = r.uniform(0, 360)
        self.brake_pad = r.uniform(4, 12)
        self.battery = 12.6 if self.profile == "passenger_car" else 25.2
        self.attributes = {
            "kind": "vehicle", "profile": self.profile, "model": self.model,
            "vin": f"SIM{r.randrange(10**13):013d}", "dealer_code": f"DLR{r.randrange(1, 40):03d}",
            "region_code": self.region, "terrain_type": self.terrain,
        }  # fmt: skip

    def step(self, dt: float) -> dict[str, float]:
        r = self.rng
        self.phase_left_s -= dt
        if self.phase_left_s <= 0:
            phase = r.choices(("idle", "urban", "highway"), (0.2, 0.5, 0.3))[0]
            top = 90.0 if self.profile == "truck" else 120.0
            self.target = {"idle": 0.0, "urban": r.uniform(20, 55), "highway": r.uniform(80, top)}[
                phase
            ]
            self.phase_left_s = r.uniform(20, 180)
        accel = max(-4.0, min(2.5, (self.target - self.speed) * 0.3)) + r.gauss(0, 0.3)
        braking = accel < -1.0
        self.speed = max(0.0, self.speed + accel * dt * 3.6)
        km = self.speed * dt / 3600.0
        self.odometer += km
        self.fuel = max(0.0, self.fuel - km * (0.09 if self.profile == "truck" else 0.02))
        if self.fuel < 8 and r.random() < 0.02:
            self.fuel = r.uniform(85, 100)  # refuel
        load = min(1.0, 0.15 + self.speed / 140 + max(0.0, accel) * 0.2)
        target_temp = 88 + 8 * load
        warm = 0.02 if self.coolant < 80 else 0.1
        self.coolant += (target_temp - self.coolant) * warm * dt + r.gauss(0, 0.05)
        if braking:
            self.brake_pad = max(0.5, self.brake_pad - 0.00002 * dt * abs(accel))
        gear = min(6, 1 + int(self.speed // 22))
        rpm = 800.0 if self.speed < 2 else 800 + self.speed * _GEAR_RATIOS[gear] * 28
        self.battery += (13.9 if rpm > 900 else 12.5) * (
            1 if self.profile == "passenger_car" else 2
        )
        self.battery = self.battery / 2 + r.gauss(0, 0.02)
        self.heading = (self.heading + r.gauss(0, 2.0)) % 360
        rad = math.radians(self.heading)
        self.lat += km / 111.0 * math.cos(rad)
        self.lon += km / (111.0 * max(0.2, math.cos(math.radians(self.lat)))) * math.sin(rad)
        return {
            "speed_kmh": round(self.speed, 2), "rpm": round(rpm, 0),
            "coolant_temp_c": round(self.coolant, 2), "fuel_level_pct": round(self.fuel, 2),
            "odometer_km": round(self.odometer, 3), "battery_v": round(self.battery, 2),
            "brake_pad_mm": round(self.brake_pad, 3),
            "oil_pressure_kpa": round(150 + rpm * 0.08 + r.gauss(0, 3), 1),
            "lat": round(self.lat, 6), "lon": round(self.lon, 6),
            "heading_deg": round(self.heading, 1),
        }  # fmt: skip


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


@dataclass
class Machine:
    device_id: str
    profile: str
    rng: random.Random
    t: float = 0.0
    cycle_s: float = 600.0
    attributes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cycle_s = self.rng.uniform(300, 1800)
        self.t = self.rng.uniform(0, self.cycle_s)
        self.attributes = {
            "kind": "machine",
            "profile": self.profile,
            "model": f"{self.profile.upper()}-{self.rng.randrange(100, 999)}",
            "site": f"plant-{self.rng.randrange(1, 4)}",
        }

    def step(self, dt: float) -> dict[str, float]:
        r = self.rng
        self.t += dt
        load = 60 + 30 * math.sin(2 * math.pi * self.t / self.cycle_s) + r.gauss(0, 2)
        load = max(0.0, min(110.0, load))
        f = load / 75.0
        out = {"load_pct": round(load, 2)}
        for name, base in _MACHINE_BASE[self.profile].items():
            scale = f if name in ("power_kw", "current_a", "flow_rate_m3h") else 1.0
            noise = 0.02 if name != "vibration_mm_s" else 0.08
            out[name] = round(base * scale * (1 + r.gauss(0, noise)), 3)
        return out


Device = Vehicle | Machine


def make_fleet(count: int, seed: int = 1, vehicle_share: float = 0.6) -> list[Device]:
    """``count`` devices, ``vehicle_share`` of them vehicles, deterministic for ``seed``."""
    rng = random.Random(seed)
    fleet: list[Device] = []
    vehicles = round(count * vehicle_share)
    for i in range(count):
        dev_rng = random.Random(rng.getrandbits(64))
        if i < vehicles:
            profile, model = VEHICLE_MODELS[i % len(VEHICLE_MODELS)]
            fleet.append(
                Vehicle(
                    f"veh-{i:05d}",
                    profile,
                    model,
                    dev_rng,
                    region=REGIONS[i % len(REGIONS)],
                    terrain=TERRAINS[i % 3],
                )
            )
        else:
            profile = MACHINE_TYPES[i % len(MACHINE_TYPES)]
            fleet.append(Machine(f"mac-{i:05d}", profile, dev_rng))
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
