"""The vectorised detector layers against the scalar ones (the reference), on the same streams:
every reading's events, verdict and score, and every track's state at the end."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest

from simulators import scenario as scenarios
from simulators.replay import read_series
from simulators.traffic import Traffic, TrafficConfig
from twin.anomaly.columns import ColumnarDetectors, Item
from twin.anomaly.config import FLEET, SKAB, DetectorConfig
from twin.anomaly.detectors import AnomalyDetectors, DetectorState, Observation
from twin.anomaly.records import Anomaly
from twin.anomaly.season import Season
from twin.anomaly.state import Track, unpacked_state
from twin.anomaly.track_columns import COUNT_FIELDS, COUNT_MAX
from twin.profiles import ProfileBook

SKAB_DIR = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "skab" / "valve1"
T0 = 1_790_000_000_000


def scalar_tracks_equal(a: Track, b: Track, tolerance: float = 1e-9) -> bool:
    """Two tracks hold the same state (floats within ``tolerance``, relative)."""
    for name in Track.__struct_fields__:
        va, vb = getattr(a, name), getattr(b, name)
        if isinstance(va, float):
            if not abs(va - vb) <= tolerance * max(1.0, abs(va), abs(vb)):
                return False
        elif va != vb:
            return False
    return True


def seasons_equal(
    a: dict[str, Season] | None, b: dict[str, Season] | None, tolerance: float = 1e-9
) -> bool:
    a, b = a or {}, b or {}
    if set(a) != set(b):
        return False
    for metric, sa in a.items():
        ta, tb = msgspec.structs.astuple(sa), msgspec.structs.astuple(b[metric])
        for va, vb in zip(ta, tb, strict=True):
            pairs = zip(va, vb, strict=True) if isinstance(va, list) else [(va, vb)]
            if any(abs(x - y) > tolerance * max(1.0, abs(x), abs(y)) for x, y in pairs):
                return False
    return True


def _key(a: Anomaly) -> tuple[object, ...]:
    return (a.detector, a.metric, a.kind, a.started_ms, a.ended_ms, a.severity, a.score,
            a.expected, a.observed)  # fmt: skip


def run_both(
    items: Sequence[Item], config: DetectorConfig, batch: int
) -> tuple[dict[str, DetectorState], ColumnarDetectors, set[str]]:
    scalar, columnar = AnomalyDetectors(config), ColumnarDetectors(config)
    states: dict[str, DetectorState] = {}
    seen: set[str] = set()
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        expected = [
            scalar.observe(states.setdefault(d, DetectorState()), d, p, ts, v)
            for d, p, ts, v in chunk
        ]
        got = columnar.observe_batch(chunk)
        assert len(got) == len(expected)
        for (d, _, ts, _), want, have in zip(chunk, expected, got, strict=True):
            where = f"{d} at {ts}"
            assert sorted(map(_key, have.events)) == sorted(map(_key, want.events)), where
            assert have.flagged == want.flagged, where
            assert have.score == pytest.approx(want.score, abs=1e-9), where
            seen |= {a.detector for a in want.events}
    for device_id, st in states.items():
        mine = unpacked_state(columnar.state(device_id))
        assert set(mine.tracks) == set(st.tracks)
        for metric, track in st.tracks.items():
            assert scalar_tracks_equal(track, mine.tracks[metric]), (device_id, metric)
        assert mine.open == st.open
        assert seasons_equal(mine.seasons, st.seasons), device_id
        assert (mine.readings, mine.raised, mine.last_ts) == (st.readings, st.raised, st.last_ts)
        assert columnar.health(device_id) == scalar.health(st)
    return states, columnar, seen


@pytest.mark.skipif(not SKAB_DIR.is_dir(), reason="the SKAB dataset is not next to the repository")
def test_skab_files_score_the_same() -> None:
    items: list[Item] = []
    for path in sorted(SKAB_DIR.glob("*.csv"))[:3]:
        items += [(path.name, None, ts, v) for ts, v in read_series(path).rows]
    _, _, seen = run_both(items, SKAB, batch=200)
    assert {"level", "shift"} <= seen  # the files hold anomalies: the comparison saw transitions


def fleet(name: str, devices: int, duration_s: float, rate: float | None = None) -> list[Item]:
    scenario = scenarios.load(name)
    run = {**scenario.run, "devices": devices, "duration_s": duration_s}
    if rate is not None:
        run["rate"] = rate
    run.pop("bad_fraction", None)
    config = TrafficConfig(seed=3, **run)
    traffic = Traffic(config, T0)
    faults = scenario.plan(traffic.fleet, 3, T0, duration_s)
    traffic = Traffic(config, T0, faults)
    book = ProfileBook()
    profiles = {d.device_id: book.get(d.profile) for d in traffic.fleet}
    decode = msgspec.json.Decoder().decode
    items: list[Item] = []
    for m in traffic.messages():
        if m.kind == "telemetry" and not m.bad_reason:
            device_id = traffic.fleet[m.device].device_id
            body = decode(m.payload)
            for r in body if isinstance(body, list) else [body]:
                items.append((device_id, profiles[device_id], r["ts"], r["values"]))
    return items


def test_a_fleet_with_every_fault_kind_scores_the_same() -> None:
    """Vehicles and machines (driver metrics, falling and rate watches), injected faults: level,
    rate, drift, flatline, thresholds, GPS jumps and dropouts all open and close."""
    items = fleet("mixed-faults", devices=60, duration_s=240)
    config = msgspec.structs.replace(FLEET, warmup_readings=40)
    states, _, seen = run_both(items, config, batch=500)
    assert len(states) == 60
    assert {"level", "rate", "flatline", "rule"} <= seen, seen


def test_late_repeated_and_partial_readings_and_several_per_batch() -> None:
    rng = random.Random(7)
    book = ProfileBook()
    pump = book.get("pump")
    items: list[Item] = []
    for i in range(3000):
        device = f"m{rng.randrange(8)}"
        ts = T0 + i * 1000 + rng.choice([0, 0, 0, -5000, -1000])  # some late, some repeated
        values = {"temperature_c": 60 + rng.gauss(0, 1) + (30 if 2000 < i < 2100 else 0),
                  "load_pct": rng.choice([0.0, 50.0, 50.0, 80.0]),
                  "vibration_mm_s": 2 + rng.gauss(0, 0.1)}  # fmt: skip
        if rng.random() < 0.3:
            values.pop("vibration_mm_s")
        if rng.random() < 0.05:
            values["pressure_bar"] = 5.0  # a metric that never changes: never "stuck"
        items.append((device, pump if device != "m7" else None, ts, values))
    run_both(items, msgspec.structs.replace(FLEET, warmup_readings=30), batch=97)


@pytest.mark.parametrize("counts", ["as counted", "about to pass 32 bits"])
def test_a_twin_loaded_from_its_snapshot_carries_on_the_same(counts: str) -> None:
    """Also with every count three short of the columns' 32 bits: they saturate there, the
    scalar layers' counts go on, and the verdicts stay the same."""
    items = fleet("mixed-faults", devices=20, duration_s=120)
    config = msgspec.structs.replace(FLEET, warmup_readings=40)
    half = len(items) // 2
    states, _, _ = run_both(items[:half], config, batch=300)
    if counts != "as counted":
        near = {f: COUNT_MAX - 3 for f in COUNT_FIELDS}
        for st in states.values():
            st.tracks = {m: msgspec.structs.replace(t, **near) for m, t in st.tracks.items()}
    scalar, columnar = AnomalyDetectors(config), ColumnarDetectors(config)
    for device_id, st in states.items():  # the snapshot's round trip, then the rest
        columnar.load(device_id, msgspec.json.decode(msgspec.json.encode(st), type=DetectorState))
    rest = items[half:]
    got = columnar.observe_batch(rest)
    want = [scalar.observe(states[d], d, p, ts, v) for d, p, ts, v in rest]
    assert [sorted(map(_key, o.events)) for o in got] == [sorted(map(_key, o.events)) for o in want]
    for device_id, st in states.items():
        mine = unpacked_state(columnar.state(device_id))
        assert mine.open == st.open
        for metric, track in st.tracks.items():  # a count held as far as 32 bits go
            held = {f: min(getattr(track, f), COUNT_MAX) for f in COUNT_FIELDS}
            want = msgspec.structs.replace(track, **held)
            assert scalar_tracks_equal(want, mine.tracks[metric]), (device_id, metric)


def test_slow_drifts_jumps_and_level_drift_score_the_same() -> None:
    """A fuel leak (the rate of a falling metric drifts), a temperature creeping up (level
    drift, when configured) and a GPS jump, on cars sending every second."""
    rng = random.Random(11)
    car = ProfileBook().get("passenger_car")
    items: list[Item] = []
    for i in range(2400):
        for c in range(4):
            leak = 0.002 * max(0, i - 1200) if c == 0 else 0.0
            creep = 0.01 * max(0, i - 1500) if c == 1 else 0.0
            jump = 1.5 if c == 2 and 1800 <= i < 1805 else 0.0
            items.append((f"car{c}", car, T0 + i * 1000, {
                "fuel_level_pct": 80 - 0.0005 * i - leak * i / 100 + rng.gauss(0, 0.001),
                "coolant_temp_c": 88 + creep + rng.gauss(0, 0.3),
                "rpm": 2000 + rng.gauss(0, 5),
                "lat": 52.5 + 0.00001 * i + jump, "lon": 13.4,
            }))  # fmt: skip
    for level_drift in (False, True):
        config = msgspec.structs.replace(FLEET, warmup_readings=60, level_drift=level_drift)
        _, _, seen = run_both(items, config, batch=64)
        assert {"drift", "position"} <= seen, seen


def carry_on_restored(
    states: dict[str, DetectorState], rest: Sequence[Item], config: DetectorConfig
) -> list[Observation]:
    """Restore every twin's snapshot into fresh columns and run ``rest`` through both paths:
    the same events, scores and final state. Returns the scalar observations."""
    scalar, columnar = AnomalyDetectors(config), ColumnarDetectors(config)
    for device_id, st in states.items():
        columnar.load(device_id, msgspec.json.decode(msgspec.json.encode(st), type=DetectorState))
    got = columnar.observe_batch(rest)
    want = [scalar.observe(states[d], d, p, ts, v) for d, p, ts, v in rest]
    assert [sorted(map(_key, o.events)) for o in got] == [sorted(map(_key, o.events)) for o in want]
    assert [o.score for o in got] == pytest.approx([o.score for o in want], abs=1e-9)
    for device_id, st in states.items():
        mine = unpacked_state(columnar.state(device_id))
        assert mine.open == st.open
        assert seasons_equal(mine.seasons, st.seasons), device_id
        for metric, track in st.tracks.items():
            assert scalar_tracks_equal(track, mine.tracks[metric]), (device_id, metric)
    return want


def test_shifts_at_operating_points_score_the_same_through_a_restart() -> None:
    """The shift layer on machines and vehicles, half of them without a profile (so without a
    driver metric: their shifts are judged), the state carried over in a snapshot half-way."""
    items = [(d, p if d[-1] in "02468" else None, ts, v)
             for d, p, ts, v in fleet("mixed-faults", devices=20, duration_s=160)]  # fmt: skip
    config = msgspec.structs.replace(FLEET, warmup_readings=40, shift_lambda=0.1, shift_hi=5.0,
                                     shift_lo=3.0, shift_learn=2.5, adapt=50)  # fmt: skip
    half = len(items) // 2
    states, _, seen = run_both(items[:half], config, batch=250)
    want = carry_on_restored(states, items[half:], config)
    seen |= {a.detector for o in want for a in o.events}
    assert "shift" in seen, seen


def _last_morning(n: int) -> int:
    return 288 * ((n - 1) // 288) + 48


def _daily(device: int, days: float, rng: random.Random) -> list[Item]:
    """A 5-minute historian: a daily cycle (none on device 0), a spike, a peak that does not
    come on the last day."""
    n = int(days * 288)
    amplitude = 6.0 * device
    peak = _last_morning(n)
    out: list[Item] = []
    for i in range(n):
        hour = (i % 288) / 12
        x = 50 + amplitude * math.sin(2 * math.pi * hour / 24) + rng.gauss(0, 1)
        if i == n - 400:
            x += 15
        if peak <= i < peak + 48:  # four to eight in the morning, when the cycle is high
            x = 50 + rng.gauss(0, 1)
        out.append((f"h{device}", None, T0 + i * 300_000, {"temp": x}))
    return out


def test_seasons_are_learnt_used_and_restored_the_same() -> None:
    rng = random.Random(11)
    streams = [_daily(d, 3.5, rng) for d in range(4)]
    items = [item for group in zip(*streams, strict=True) for item in group]
    config = msgspec.structs.replace(FLEET, warmup_readings=40, season_min_days=1.0)
    half = len(items) // 2
    states, _, _ = run_both(items[:half], config, batch=50)
    assert any(st.seasons and st.seasons["temp"].on for st in states.values())
    assert states["h0"].seasons and not states["h0"].seasons["temp"].on  # no cycle, no season
    want = carry_on_restored(states, items[half:], config)
    missing_peak = T0 + _last_morning(len(streams[3])) * 300_000
    lows = [a for o in want for a in o.events if a.device_id == "h3" and a.kind == "low"]
    assert any(abs(a.started_ms - missing_peak) <= 3_600_000 for a in lows), lows
