"""Detector cost per reading, the scalar layers against the vectorised ones (prints figures).

A simulated fleet of 10,000 devices at one reading per device every second, in source batches
of 5,000 readings (almost every device once per batch, as in the engine). Both see the same
readings; the figure is the time spent in the detectors alone, per reading, after every
device's first batches."""

from __future__ import annotations

import time

import msgspec
import pytest

from tests.unit.test_columnar_detectors import fleet
from twin.anomaly.columns import ColumnarDetectors
from twin.anomaly.config import FLEET
from twin.anomaly.detectors import AnomalyDetectors, DetectorState

pytestmark = pytest.mark.bench


@pytest.mark.parametrize("devices", [1_000, 10_000])
def test_detector_cost_per_reading(devices: int) -> None:
    items = fleet("quiet", devices=devices, duration_s=120_000 / devices, rate=devices)
    config = msgspec.structs.replace(FLEET, warmup_readings=5)
    scalar, columnar = AnomalyDetectors(config), ColumnarDetectors(config)
    states: dict[str, DetectorState] = {}
    batch, warm = 5_000, len(items) // 2
    spent = {"scalar": 0.0, "columnar": 0.0}
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        a = time.perf_counter()
        for d, p, ts, v in chunk:
            scalar.observe(states.setdefault(d, DetectorState()), d, p, ts, v)
        b = time.perf_counter()
        columnar.observe_batch(chunk)
        c = time.perf_counter()
        if start >= warm:
            spent["scalar"] += b - a
            spent["columnar"] += c - b
    measured = len(items) - warm
    per = {k: v / measured * 1e6 for k, v in spent.items()}
    metrics = sum(len(v) for _, _, _, v in items) / len(items)
    print(
        f"\ndetectors, {devices} devices, {metrics:.1f} metrics per reading, batches of {batch}:"
        f" scalar {per['scalar']:.1f} µs/reading, vectorised {per['columnar']:.1f} µs/reading"
        f" ({per['scalar'] / per['columnar']:.1f}x)"
    )
    assert per["scalar"] > 0 and per["columnar"] > 0
    groups = (columnar.tracks.f, columnar.tracks.i, columnar.tracks.open)
    column_bytes = sum(a.nbytes for group in groups for a in group.values())
    used = columnar.tracks.size / max(1, len(states))
    scalar_bytes = sum(len(msgspec.json.encode(st)) for st in states.values()) / len(states)
    print(
        f"detector state per twin: columns {column_bytes / len(states):.0f} B allocated "
        f"({used:.1f} rows of {column_bytes / columnar.tracks._capacity:.0f} B each), "
        f"scalar state encoded {scalar_bytes:.0f} B"
    )  # fmt: skip
