"""Each detector on synthetic series with known anomalies, and none on clean ones."""

from __future__ import annotations

import random

import msgspec
import pytest

from twin.anomaly.config import FLEET
from twin.anomaly.detectors import AnomalyDetectors, DetectorState
from twin.anomaly.records import Anomaly
from twin.processor import TwinProcessor
from twin.profiles import ProfileBook
from twin.records import DeviceInbox, Reading
from twin.state import decode_state, encode_state

T0 = 1_790_000_000_000
CFG = msgspec.structs.replace(FLEET, warmup_readings=50)
BOOK = ProfileBook()


def run(
    series: list[dict[str, float]],
    profile: str | None = None,
    step_ms: int = 1000,
    detectors: AnomalyDetectors | None = None,
    state: DetectorState | None = None,
) -> tuple[list[Anomaly], DetectorState, list[bool]]:
    det = detectors or AnomalyDetectors(CFG)
    st = state or DetectorState()
    prof = BOOK.get(profile) if profile else None
    events: list[Anomaly] = []
    flags = []
    for i, values in enumerate(series):
        obs = det.observe(st, "dev", prof, T0 + i * step_ms, values)
        events.extend(obs.events)
        flags.append(obs.flagged)
    return events, st, flags


def noise(n: int, mean: float = 50.0, sd: float = 1.0, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [round(rng.gauss(mean, sd), 3) for _ in range(n)]


def opened(events: list[Anomaly]) -> list[Anomaly]:
    return [a for a in events if a.ended_ms is None]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clean_series_raise_nothing(seed: int):
    rng = random.Random(seed)
    series = [
        {
            "temperature_c": round(rng.gauss(60, 0.8), 3),
            "vibration_mm_s": round(rng.gauss(2, 0.1), 3),
        }
        for _ in range(5000)
    ]
    events, _, flags = run(series)
    assert events == [] and not any(flags)


def test_level_shift_opens_one_episode_that_lasts_and_then_closes():
    values = noise(300) + [v + 15 for v in noise(60, seed=2)] + noise(100, seed=3)
    events, st, flags = run([{"temperature_c": v} for v in values])
    level = [a for a in events if a.detector == "level"]
    assert [a.ended_ms is None for a in level] == [True, False]  # opened once, closed once
    start, end = level
    assert start.kind == "high" and start.metric == "temperature_c"
    assert T0 + 300_000 <= start.started_ms <= T0 + 303_000  # within the persistence window
    assert start.expected == pytest.approx(50, abs=1) and start.observed == pytest.approx(65, abs=4)
    clear = 360 + CFG.hold + 5  # held open for ``hold`` readings back to normal
    assert end.ended_ms is not None and T0 + 360_000 <= end.ended_ms <= T0 + clear * 1000
    assert all(flags[303:360]) and not any(flags[clear:])  # flagged throughout, then clear
    assert not [a for a in events if a.detector == "shift"]  # reported once, by the level
    assert not st.open


def test_a_spike_is_reported_at_once():
    values = noise(200)
    values[150] = 120.0
    events, _, flags = run([{"pressure_bar": v} for v in values])
    first = opened(events)[0]
    assert first.started_ms == T0 + 150_000 and first.severity == "critical"
    assert flags[150] and not any(flags[:150])


def test_stuck_sensor_is_reported_after_its_repeats():
    values = noise(200) + [49.321] * 40 + noise(20, seed=5)
    events, _, _ = run([{"current_a": v} for v in values])
    stuck = [a for a in events if a.detector == "flatline"]
    assert stuck and stuck[0].kind == "stuck"
    assert stuck[0].started_ms == T0 + (200 + CFG.flat_readings) * 1000
    assert stuck[-1].ended_ms == T0 + 240_000  # closes when the value moves again


def test_slow_wear_is_caught_by_the_drift_detector():
    """Brake pads (watch = falling) wearing at 0.002 mm/s: each step is one unit of resolution."""
    pads, series = 10.0, []
    for i in range(600):
        if i >= 300:
            pads -= 0.002
        elif i % 97 == 0:
            pads -= 0.001  # ordinary braking
        series.append({"brake_pad_mm": round(pads, 3), "rpm": 2000.0, "speed_kmh": 50.0})
    events, _, _ = run(series, profile="passenger_car")
    drift = [a for a in opened(events) if a.detector == "drift"]
    assert drift and drift[0].kind == "falling" and drift[0].metric == "brake_pad_mm"
    assert T0 + 300_000 < drift[0].started_ms < T0 + 400_000
    assert not [a for a in events if a.started_ms < T0 + 300_000]


def test_refuelling_is_normal_but_a_leak_is_not():
    fuel, series = 60.0, []
    for i in range(500):
        fuel -= 0.004
        if i == 200:
            fuel = 95.0  # refuel
        if i >= 400:
            fuel -= 0.3  # leak
        series.append({"fuel_level_pct": round(fuel, 2), "rpm": 2000.0})
    events, _, _ = run(series, profile="passenger_car")
    found = opened(events)
    assert found and all(a.started_ms >= T0 + 400_000 for a in found)
    assert found[0].metric == "fuel_level_pct" and found[0].kind == "falling"


def test_operating_point_explains_load_driven_metrics():
    """Power follows load: a swing in load is normal, power off its usual line is not."""
    rng = random.Random(4)
    series = []
    for i in range(900):
        load = 50 + 30 * (1 if (i // 60) % 2 else -1) + rng.gauss(0, 1)
        power = 0.6 * load * (1 + rng.gauss(0, 0.01))
        if i >= 800:
            power *= 1.3  # the same load now takes 30 % more power
        series.append({"load_pct": round(load, 2), "power_kw": round(power, 3)})
    events, _, _ = run(series, profile="pump")
    found = opened(events)
    assert found and all(a.started_ms >= T0 + 800_000 for a in found)
    assert found[0].metric == "power_kw" and found[0].detector == "level"


def test_gps_jump_and_rule_thresholds():
    series = []
    for i in range(120):
        lat = 52.5 + i * 0.0002 + (1.0 if 100 <= i < 105 else 0.0)
        coolant = 90.0 if i < 110 else 118.0  # above the car's critical 115 °C
        series.append({"lat": lat, "lon": 13.4, "coolant_temp_c": coolant, "rpm": 2000.0})
    events, _, _ = run(series, profile="passenger_car")
    kinds = {(a.detector, a.kind) for a in opened(events)}
    assert ("position", "jump") in kinds
    rule = next(a for a in events if a.detector == "rule")
    assert (rule.severity, rule.expected, rule.observed) == ("critical", 115, 118.0)


def test_warm_up_scores_but_raises_nothing_except_rules():
    values = noise(40)
    values[20] = 500.0  # inside the 50-reading warm-up
    events, _, flags = run([{"vibration_mm_s": v} for v in values])
    assert events == [] and not any(flags)


def test_dropout_is_reported_against_a_clock_and_closes_on_return():
    det = AnomalyDetectors(CFG)
    _, st, _ = run([{"temperature_c": v} for v in noise(100)], detectors=det)
    last = T0 + 99_000
    assert det.check_silence(st, "dev", last + 20_000) == []  # 20 intervals but under 30 s
    found = det.check_silence(st, "dev", last + 31_000)
    assert [(a.detector, a.kind) for a in found] == [("dropout", "silent")]
    assert det.check_silence(st, "dev", last + 60_000) == []  # once per silence
    obs = det.observe(st, "dev", None, last + 61_000, {"temperature_c": 50.0})
    assert [a.ended_ms for a in obs.events if a.detector == "dropout"] == [last + 61_000]


def test_detector_state_survives_a_snapshot_round_trip():
    """A twin restored from its snapshot scores exactly as the one that kept running."""
    p = TwinProcessor(detectors=AnomalyDetectors(CFG))
    rng = random.Random(9)

    def inbox(i: int, shift: float = 0.0) -> DeviceInbox:
        v = {"temperature_c": round(rng.gauss(60, 1) + shift, 3), "load_pct": 50.0}
        r = Reading("pump-1", T0 + i * 1000, v, T0 + i * 1000)
        return DeviceInbox("pump-1", [r], 1)

    state = None
    for i in range(200):
        state, _ = p.process(state, "pump-1", inbox(i), T0 + i * 1000)
    assert state is not None and state.detectors.tracks
    restored = decode_state(encode_state(state))
    assert restored == state
    later = [inbox(200 + i, shift=12.0 if i >= 5 else 0.0) for i in range(20)]
    outs_a = [p.process(state, "pump-1", b, T0)[1].anomalies for b in later]
    outs_b = [p.process(restored, "pump-1", b, T0)[1].anomalies for b in later]
    assert outs_a == outs_b and any(outs_a)
    assert restored.health < 100
    assert len(encode_state(restored)) < 8 * 1024


def test_a_machine_that_stood_still_for_long_starts_again_without_an_alarm():
    """Hours of zeros while stopped teach the baseline nothing about how noisy the current is
    while running: spreads only widen at rest, so the restart is normal."""
    rng = random.Random(5)

    def running(n: int) -> list[dict[str, float]]:
        out = []
        for _ in range(n):
            load = rng.uniform(70, 85)
            out.append({"load_pct": load, "current_a": 130 * load / 75 * (1 + rng.gauss(0, 0.02))})
        return out

    stopped = [{"load_pct": 0.0, "current_a": 0.0}] * 900
    events, _, _ = run(running(400) + stopped + running(400), "compressor")
    assert [e for e in events if e.detector != "rule"] == []


def test_a_small_lasting_shift_is_one_shift_anomaly_from_its_onset():
    """Two and a half spreads up: single values stay inside the level's thresholds, the
    smoothed deviation passes eight of its own spreads within a few dozen readings, and it
    is one anomaly for as long as the shift lasts."""
    values = noise(400) + [v + 2.5 for v in noise(300, seed=2)]
    events, _, flags = run([{"temperature_c": v} for v in values])
    found = opened(events)
    assert [(a.detector, a.kind) for a in found] == [("shift", "high")]
    assert T0 + 400_000 <= found[0].started_ms <= T0 + 440_000
    assert found[0].expected == pytest.approx(50, abs=0.5)
    assert all(flags[440:700])


@pytest.mark.parametrize(("cadence_s", "held_for_s"), [(300, 86_400), (1, 1_000)])
def test_a_step_that_stays_becomes_the_new_normal_after_a_day_or_1000_readings(
    cadence_s: int, held_for_s: int
) -> None:
    """Whichever comes first: a 5 min historian's step is learnt after a day (288 readings),
    a 1 s sensor's after 1,000 readings; the vectorised layers agree."""
    from twin.anomaly.columns import ColumnarDetectors

    rng = random.Random(4)
    n_before, n_after = 600, 2 * held_for_s // cadence_s
    values = [
        20 + rng.gauss(0, 1) + (10 if i >= n_before else 0) for i in range(n_before + n_after)
    ]
    det, st, cd = AnomalyDetectors(FLEET), DetectorState(), ColumnarDetectors(FLEET)
    events: list[Anomaly] = []
    for i, x in enumerate(values):
        ts = T0 + i * cadence_s * 1000
        want = det.observe(st, "p1", None, ts, {"t": x}).events
        (got,) = cd.observe_batch([("p1", None, ts, {"t": x})])
        assert got.events == want, i
        events += want
    level = [a for a in events if a.detector == "level" and a.ended_ms is not None]
    assert len(level) == 1, events
    start = T0 + n_before * cadence_s * 1000
    assert level[0].started_ms == start
    lasted_s = (level[0].ended_ms - start) / 1000
    assert held_for_s <= lasted_s <= held_for_s + 40 * cadence_s, lasted_s
