"""Calibrated deviations: a metric's own tail decides how rare a deviation is."""

from __future__ import annotations

import numpy as np

from twin.anomaly.config import FLEET
from twin.anomaly.detectors import AnomalyDetectors, DetectorState
from twin.anomaly.state import Track
from twin.anomaly.tail import GAUSS_EXCESS, GAUSS_SHARE, Tail

T0 = 1_790_000_000_000
TAIL = Tail.from_config(FLEET)


def learnt(deviations: np.ndarray) -> Track:
    tr = Track(n=FLEET.warmup_readings)
    for z in np.abs(deviations).tolist():
        TAIL.level(tr, z, learn=True)
        tr.n += 1
    return tr


def test_a_gaussian_metric_keeps_its_deviations_and_learns_a_gaussian_tail() -> None:
    tr = learnt(np.random.default_rng(1).normal(0, 1, 20_000))
    assert abs(tr.tail_r - GAUSS_SHARE) < 0.002 and abs(tr.tail_m - GAUSS_EXCESS) < 0.1
    for z in (1.0, 2.9, 4.0, 6.0):
        assert abs(TAIL.level(tr, z, learn=False) - z) < 0.6


def test_a_heavy_tailed_metric_counts_its_usual_spikes_as_less_rare() -> None:
    tr = learnt(np.random.default_rng(2).standard_t(2, 20_000))
    assert tr.tail_r > 10 * GAUSS_SHARE  # beyond 3 spreads is common here
    assert TAIL.level(tr, 8.0, learn=False) < FLEET.level_instant
    assert TAIL.level(tr, 2.0, learn=False) == 2.0  # nothing is made more sensitive
    fresh = Track()
    assert TAIL.level(fresh, 8.0, learn=False) == 8.0  # the Gaussian default


def test_a_fault_held_open_is_not_learnt_as_the_metric_tail() -> None:
    tr = learnt(np.random.default_rng(3).normal(0, 1, 5_000))
    before = (tr.tail_r, tr.tail_m)
    for _ in range(500):
        TAIL.level(tr, 9.0, learn=False)
    assert (tr.tail_r, tr.tail_m) == before
    assert TAIL.level(tr, 9.0, learn=False) > FLEET.level_instant


def test_spikes_that_are_normal_stop_raising_a_burst_still_does() -> None:
    """A single reading at +200 is a one-in-a-thousand event on this metric, so the level
    layer learns to let it pass; thirty of them in a row are a shift."""
    rng = np.random.default_rng(4)
    x = 100 + 5 * rng.standard_t(2, 6_000).clip(-40, 40)
    x[5_000:5_030] = 300 + rng.normal(0, 5, 30)
    det, st = AnomalyDetectors(FLEET), DetectorState()
    opened: list[tuple[int, str]] = []
    for i, v in enumerate(x.tolist()):
        for a in det.observe(st, "d", None, T0 + i * 1000, {"m": v}).events:
            if a.ended_ms is None and a.started_ms == T0 + i * 1000:
                opened.append((i, a.detector))
    late = [i for i, detector in opened if 2_000 <= i < 5_000 and detector == "level"]
    assert len(late) <= 2, late
    assert any(5_000 <= i < 5_030 for i, _ in opened), opened


def test_the_rate_learns_its_own_tail_apart_from_the_level() -> None:
    tr = Track(n=FLEET.warmup_readings, rn=FLEET.warmup_readings)
    for z in np.abs(np.random.default_rng(5).standard_t(2, 20_000)).tolist():
        TAIL.rate(tr, z, learn=True)
        tr.rn += 1
    assert tr.rtail_r > 10 * GAUSS_SHARE
    assert (tr.tail_r, tr.tail_m) == (Track().tail_r, Track().tail_m)  # the level's untouched
    assert TAIL.rate(tr, 8.0, learn=False) < FLEET.rate_instant
