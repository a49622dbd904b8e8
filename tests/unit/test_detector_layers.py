"""Each detector layer alone, through its contract: score before learn, state in the Track."""

from __future__ import annotations

import copy
import random

from twin.anomaly.config import FLEET
from twin.anomaly.episodes import Episodes
from twin.anomaly.flatline import Flatline
from twin.anomaly.layers import Drift, Level, Rate, Sample
from twin.anomaly.state import DetectorState, Track
from twin.anomaly.tail import Tail

T0 = 1_763_683_200_000


def episodes(st: DetectorState) -> Episodes:
    return Episodes(st, "d1", hold=0, version="t", critical_z={"level": 8.0, "*": 16.0})


def sample(metric: str, x: float, i: int, tr: Track, watch: str = "all") -> Sample:
    warm = tr.n >= FLEET.warmup_readings
    return Sample(metric, x, None, watch, True, T0 + i * 1000, warm, not warm)


def feed(layers: list, tr: Track, st: DetectorState, metric: str, xs: list[float],
         start: int = 0, watch: str = "all") -> list[float]:  # fmt: skip
    scores = []
    for i, x in enumerate(xs, start):
        s, eps = sample(metric, x, i, tr, watch), episodes(st)
        scores.append(max(layer.score(tr, s, eps) for layer in layers))
        for layer in layers:
            layer.learn(tr, s, eps)
        tr.last, tr.last_ts = x, s.ts_ms
    return scores


def noise(n: int, mean: float = 50.0, sd: float = 1.0, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(mean, sd) for _ in range(n)]


def test_a_spike_is_judged_against_the_baseline_before_it_and_not_learnt() -> None:
    level, st, tr = Level.from_config(FLEET), DetectorState(), Track()
    feed([level], tr, st, "temp", noise(300))
    before = copy.copy(tr)
    [spike_score] = feed([level], tr, st, "temp", [90.0], start=300)
    assert "level:temp" in st.open and st.open["level:temp"].kind == "high"
    assert spike_score > 0.5
    assert (tr.n, tr.mean, tr.var) == (before.n, before.mean, before.var)  # nothing learnt


def test_nothing_is_raised_while_warming_up() -> None:
    level, st, tr = Level.from_config(FLEET), DetectorState(), Track()
    feed([level], tr, st, "temp", [*noise(50), 500.0])
    assert st.open == {} and st.raised == 0


def test_a_layer_holds_no_device_state() -> None:
    level = Level.from_config(FLEET)
    held = dict(vars(level))
    a, b = (DetectorState(), Track()), (DetectorState(), Track())
    feed([level], a[1], a[0], "temp", [*noise(300, seed=1), 90.0])
    feed([level], b[1], b[0], "temp", noise(300, seed=2))
    assert vars(level) == held
    assert "level:temp" in a[0].open and b[0].open == {}


def test_a_falling_watch_ignores_a_fast_rise() -> None:
    rate, st, tr = Rate.from_config(FLEET), DetectorState(), Track()
    xs = [100 - 0.01 * i + random.Random(i).gauss(0, 0.001) for i in range(300)]
    feed([rate], tr, st, "fuel", xs, watch="falling")
    feed([rate], tr, st, "fuel", [xs[-1] + 40.0], start=300, watch="falling")  # a refill
    assert st.open == {}


def test_a_small_shift_that_lasts_is_one_drift_episode() -> None:
    level = Level(hi=4.0, lo=3.0, instant=8.0, persist=3, alpha=0.01, warmup=120,
                  abs_floor=1e-6, rel_floor=0.0, drift=True, adapt=1000, adapt_ms=8.64e7,
                  tail=Tail.from_config(FLEET))  # fmt: skip
    drift, st, tr = Drift(k=0.5, h=25.0), DetectorState(), Track()
    feed([level, drift], tr, st, "temp", noise(300))
    feed([level, drift], tr, st, "temp", noise(200, mean=52.0, seed=5), start=300)
    assert list(st.open) == ["drift:temp"] and st.raised == 1


def test_a_stuck_sensor_is_one_that_used_to_change() -> None:
    """(With the level layer, whose learning counts the metric's readings.)"""
    layers = [Level.from_config(FLEET), Flatline.from_config(FLEET)]
    st, tr = DetectorState(), Track()
    xs = noise(200)
    feed(layers, tr, st, "temp", xs)
    feed(layers, tr, st, "temp", [xs[-1]] * 30, start=200)
    assert list(st.open) == ["flatline:temp"]
    st2, tr2 = DetectorState(), Track()
    feed(layers, tr2, st2, "gear", [3.0] * 250)
    assert st2.open == {}
