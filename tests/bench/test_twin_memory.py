"""Memory per twin at 10k twins, and processor cost per reading, with the anomaly detectors
on and off (prints figures). Each twin has seen 20 readings: every metric has its baseline
track, whose size does not grow with more readings. The cost per reading is measured on a
simulated car's drive (signals that move like real ones)."""

from __future__ import annotations

import gc
import random
import time
import tracemalloc

import pytest

from simulators.fleet import make_fleet
from twin.anomaly.detectors import AnomalyDetectors
from twin.processor import TwinProcessor
from twin.records import Attributes, DeviceInbox, Reading
from twin.state import encode_state

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
    return Reading(dev, T0 + k * 1000, values, T0 + k * 1000)


@pytest.mark.parametrize("detectors", ["on", "off"])
def test_memory_per_twin_at_10k_twins(detectors: str):
    n = 10_000
    processor = TwinProcessor(detectors=AnomalyDetectors() if detectors == "on" else None)
    rng = random.Random(1)
    history = 20  # every metric has its track; the state does not grow with more
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    states = {}
    for i in range(n):
        dev = f"veh-{i:06d}"
        items = [Attributes(dev, {"kind": "vehicle", "profile": "passenger_car"}, T0)]
        items += [reading(dev, k, rng) for k in range(history)]
        state, _ = processor.process(None, dev, DeviceInbox(dev, items, len(items)), T0)
        states[dev] = state
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    used = sum(s.size_diff for s in after.compare_to(before, "filename"))
    encoded = sum(len(encode_state(s)) for s in states.values()) / n
    print(
        f"\n[bench] twin memory, detectors {detectors}: {used / n / 1024:.2f} KiB per twin in "
        f"memory at {n} twins (11 metrics), {encoded:.0f} bytes per encoded snapshot"
    )
    assert len(states) == n


@pytest.mark.parametrize("detectors", ["on", "off"])
def test_processor_cost_per_reading(detectors: str):
    processor = TwinProcessor(detectors=AnomalyDetectors() if detectors == "on" else None)
    dev = "veh-1"
    state = None
    car = make_fleet(1, seed=2)[0]
    attrs = Attributes(dev, {"kind": "vehicle", "profile": "passenger_car"}, T0)
    state, _ = processor.process(None, dev, DeviceInbox(dev, [attrs], 1), T0)
    batches = [
        DeviceInbox(dev, [Reading(dev, T0 + i * 1000, car.step(1.0), T0 + i * 1000)], 1)
        for i in range(50_000)
    ]
    started = time.perf_counter()
    for inbox in batches:
        state, _ = processor.process(state, dev, inbox, T0)
    elapsed = time.perf_counter() - started
    print(
        f"\n[bench] twin processor, detectors {detectors}: "
        f"{elapsed / len(batches) * 1e6:.2f} µs per reading (11 metrics, one per activation)"
    )
