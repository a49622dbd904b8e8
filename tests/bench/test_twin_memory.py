"""Memory per twin at 10k twins, and processor cost per reading (prints figures)."""

from __future__ import annotations

import gc
import time
import tracemalloc

import pytest

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


def test_memory_per_twin_at_10k_twins():
    n = 10_000
    processor = TwinProcessor()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    states = {}
    for i in range(n):
        dev = f"veh-{i:06d}"
        items = [Attributes(dev, {"kind": "vehicle", "profile": "passenger_car"}, T0)]
        items += [
            Reading(dev, T0 + k * 1000, dict(VALUES, odometer_km=1000.0 + k), T0 + k * 1000)
            for k in range(3)
        ]
        state, _ = processor.process(None, dev, DeviceInbox(dev, items, 4), T0)
        states[dev] = state
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    used = sum(s.size_diff for s in after.compare_to(before, "filename"))
    encoded = sum(len(encode_state(s)) for s in states.values()) / n
    print(
        f"\n[bench] twin memory: {used / n / 1024:.2f} KiB per twin in memory at {n} twins "
        f"(11 metrics), {encoded:.0f} bytes per encoded snapshot"
    )
    assert len(states) == n


def test_processor_cost_per_reading():
    processor = TwinProcessor()
    dev = "veh-1"
    state = None
    batches = [
        DeviceInbox(
            dev,
            [Reading(dev, T0 + i * 1000, dict(VALUES, odometer_km=1000.0 + i), T0 + i * 1000)],
            1,
        )
        for i in range(50_000)
    ]
    started = time.perf_counter()
    for inbox in batches:
        state, _ = processor.process(state, dev, inbox, T0)
    elapsed = time.perf_counter() - started
    print(
        f"\n[bench] twin processor: {elapsed / len(batches) * 1e6:.2f} µs per reading "
        "(11 metrics, one reading per activation)"
    )
