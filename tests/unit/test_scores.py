"""Scores as tail probabilities: one scale for every layer, and a reading's score for what it
newly shows."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from twin.anomaly.columns import ColumnarDetectors
from twin.anomaly.config import FLEET
from twin.anomaly.detectors import AnomalyDetectors, DetectorState
from twin.anomaly.scores import (
    ALARM_Z,
    deviation_score,
    log_tail,
    probability,
    ratio_score,
)

T0 = 1_790_000_000_000


def test_the_alarm_deviation_scores_one_half_and_the_scale_is_its_probability() -> None:
    assert deviation_score(ALARM_Z) == pytest.approx(0.5)
    assert probability(0.5) == pytest.approx(math.erfc(ALARM_Z / math.sqrt(2)), rel=1e-9)
    for z in (0.5, 1.0, 2.0, 3.0, 4.5, 7.0, 12.0):
        p = math.erfc(z / math.sqrt(2))
        assert probability(deviation_score(z)) == pytest.approx(p, rel=1e-6), z
    assert deviation_score(0.0) == 0.0
    assert deviation_score(-3.0) == 0.0
    assert deviation_score(math.nan) == 0.0


def test_scores_rise_with_the_deviation_and_never_saturate() -> None:
    zs = [0.1 * k for k in range(1, 1000)]
    got = [deviation_score(z) for z in zs]
    assert all(a < b for a, b in itertools.pairwise(got))
    assert got[-1] < 1.0
    # the asymptote where erfc underflows joins the exact tail
    assert log_tail(30.0) == pytest.approx(-math.log10(math.erfc(29.9999 / math.sqrt(2))), rel=1e-4)


def test_ratio_layers_score_one_half_at_their_threshold() -> None:
    assert ratio_score(4.0, 4.0) == 0.5
    assert ratio_score(0.0, 4.0) == 0.0
    assert ratio_score(12.0, 4.0) == 0.75


def _step_stream(n: int = 1_600, at: int = 1_000) -> list[float]:
    rng = random.Random(7)
    return [20.0 + rng.gauss(0, 1) + (12.0 if i >= at else 0.0) for i in range(n)]


@pytest.mark.parametrize("vectorised", [False, True])
def test_a_lasting_step_scores_high_at_its_onset_only(vectorised: bool) -> None:
    values = _step_stream()
    scores: list[float] = []
    flagged: list[bool] = []
    if vectorised:
        cd = ColumnarDetectors(FLEET)
        for i, x in enumerate(values):
            (obs,) = cd.observe_batch([("m1", None, T0 + 1000 * i, {"t": x})])
            scores.append(obs.score)
            flagged.append(obs.flagged)
    else:
        det, st = AnomalyDetectors(FLEET), DetectorState()
        for i, x in enumerate(values):
            obs = det.observe(st, "m1", None, T0 + 1000 * i, {"t": x})
            scores.append(obs.score)
            flagged.append(obs.flagged)
    assert not any(flagged[FLEET.warmup_readings : 1000])
    assert max(scores[1000:1003]) > 0.5  # the step is as rare as an alarm
    assert all(flagged[1003:1100])  # and stays reported ...
    assert max(scores[1010:1100]) < 0.3  # ... without scoring it again on every reading
