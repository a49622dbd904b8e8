"""Memory per twin at 10k twins, and processor cost per reading, with the vectorised detectors
(``on``, the engine's default: state in the shard's columns), the scalar ones (state in each
twin) and none (prints figures). Each twin has seen 20 readings: every metric has its baseline
track, whose size does not grow with more readings. The cost per reading is measured on
simulated cars' drives (signals that move like real ones), every car once per batch as in the
engine."""

from __future__ import annotations

import gc
import random
import time
import tracemalloc

import pytest

from simulators.fleet import make_fleet
from twin.anomaly.bank import Columns, DetectorBank, TwinHeld
from twin.anomaly.config import FLEET
from twin.anomaly.detectors import AnomalyDetectors
from twin.processor import TwinProcessor
from twin.records import Attributes, DeviceInbox, Reading

pytestmark = pytest.mark.bench
T0 = 1_763_683_200_000
VALUES = {
    "speed_kmh": 50.0, "rpm": 2000.0, "coolant_temp_c": 90.0, "fuel_level_pct": 50.0,
    "odometer_km": 1000.0, "battery_v": 12.6, "brake_pad_mm": 8.0, "oil_pressure_kpa": 300.0,
    "lat": 52.5, "lon": 13.4, "heading_deg": 90.0,
}  # fmt: skip


def reading(dev: str, k: int, rng: random.Random) -> Reading:
    values = {m: round(v * (1 + rng.gauss(0, 0.01)), 3) for m, v in VALUES.items()}
    values["odometer_km"] = 1000.0 + k * 0.01
    values["lat"], values["lon"] = 52.5 + k * 1e-4, 13.4  # about 11 m a second, due north
    return Reading(dev, T0 + k * 1000, values, T0 + k * 1000)


def bank(detectors: str) -> DetectorBank | None:
    if detectors == "off":
        return None
    return Columns(FLEET) if detectors == "on" else TwinHeld(AnomalyDetectors())


def vehicle_twins(processor: TwinProcessor, devices: list[str], history: int) -> dict:
    """Every device's twin after ``history`` readings, all devices once per batch."""
    rng = random.Random(1)
    states: dict = {}
    for k in range(history):
        work = []
        for dev in devices:
            items: list = [Attributes(dev, {"kind": "vehicle", "profile": "passenger_car"}, T0)]
            items = (items if k == 0 else []) + [reading(dev, k, rng)]
            work.append((states.get(dev), dev, DeviceInbox(dev, items, len(items))))
        for state, out in processor.process_batch(work, T0):
            states[out.device_id] = state
    return states


@pytest.mark.parametrize("detectors", ["on", "scalar", "off"])
def test_memory_per_twin_at_10k_twins(detectors: str):
    n = 10_000
    processor = TwinProcessor(detectors=bank(detectors)).for_shard()
    history = 20  # every metric has its track; the state does not grow with more
    devices = [f"veh-{i:06d}" for i in range(n)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    states = vehicle_twins(processor, devices, history)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    used = sum(s.size_diff for s in after.compare_to(before, "filename"))
    encoded = sum(len(processor.snapshot(s, T0).state) for s in states.values()) / n
    print(
        f"\n[bench] twin memory, detectors {detectors}: {used / n / 1024:.2f} KiB per twin in "
        f"memory at {n} twins (11 metrics), {encoded:.0f} bytes per encoded snapshot"
    )
    assert len(states) == n


@pytest.mark.parametrize("detectors", ["on", "scalar", "off"])
def test_processor_cost_per_reading(detectors: str):
    processor = TwinProcessor(detectors=bank(detectors)).for_shard()
    cars = [c for c in make_fleet(400, seed=2) if c.kind == "vehicle"][:200]
    devices = [f"veh-{i}" for i in range(len(cars))]
    states: dict = {}
    attrs = [
        (None, d, DeviceInbox(d, [Attributes(d, {"kind": "vehicle", "profile": "passenger_car"},
                                             T0)], 1))
        for d in devices
    ]  # fmt: skip
    for state, out in processor.process_batch(attrs, T0):
        states[out.device_id] = state
    rounds = [
        [Reading(d, T0 + i * 1000, car.step(1.0), T0 + i * 1000) for d, car in zip(devices, cars,
                                                                                  strict=True)]
        for i in range(250)
    ]  # fmt: skip
    started = time.perf_counter()
    for readings in rounds:
        work = [(states[r.device_id], r.device_id, DeviceInbox(r.device_id, [r], 1))
                for r in readings]  # fmt: skip
        for state, out in processor.process_batch(work, T0):
            states[out.device_id] = state
    elapsed = time.perf_counter() - started
    measured = sum(len(r) for r in rounds)
    print(
        f"\n[bench] twin step, detectors {detectors}: {elapsed / measured * 1e6:.2f} µs per "
        f"reading (11 metrics; {len(devices)} cars, each once per batch)"
    )
    assert all(s.readings == len(rounds) for s in states.values())
