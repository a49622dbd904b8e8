"""Window-based scoring (the Numenta benchmark's protocol) and the synthetic suite it scores."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators.series_evaluation import evaluate_series, run_series
from simulators.synthetic import FAMILIES, suite
from simulators.windows import (
    PROFILES,
    CorpusScore,
    Profile,
    label_ranges,
    onsets,
    score_series,
    sigma,
    windows,
)

STANDARD = PROFILES[0]


def labels_at(n: int, *ranges: tuple[int, int]) -> list[int]:
    out = [0] * n
    for lo, hi in ranges:
        out[lo : hi + 1] = [1] * (hi - lo + 1)
    return out


def normalised(labels: list[int], detections: list[int], profile: Profile = STANDARD) -> float:
    corpus = CorpusScore(profile)
    corpus.add(score_series(labels, detections, profile, probation=0.0))
    return corpus.normalised


def test_windows_are_centred_on_each_onset_and_merge_when_they_overlap():
    labels = labels_at(1000, (300, 300), (700, 709))
    assert label_ranges(labels) == [(300, 300), (700, 709)]
    assert windows(labels) == [(275, 325), (675, 725)]  # 10 % of 1000 / 2 anomalies = 50 rows
    assert windows(labels_at(1000, (300, 300), (320, 320))) == [(275, 345)]
    assert windows(labels_at(100, (50, 90))) == [(45, 90)]  # reaches the labelled end


def test_silence_scores_0_and_the_first_row_of_every_window_100():
    labels = labels_at(1000, (300, 300), (700, 700))
    spans = windows(labels)
    assert normalised(labels, []) == 0.0
    assert normalised(labels, [lo for lo, _ in spans]) == pytest.approx(100.0)
    assert normalised(labels, [spans[0][0]]) == pytest.approx(50.0)  # one of two windows


def test_early_detections_earn_more_and_repeats_in_a_window_earn_nothing():
    labels = labels_at(1000, (500, 500))
    lo, hi = windows(labels)[0]
    early, onset, late = (normalised(labels, [i]) for i in (lo, 500, hi))
    assert early > onset > late > 0.0
    assert normalised(labels, [500, 501, 502]) == onset
    assert sigma(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)


def test_false_detections_cost_more_the_further_from_a_window_and_by_profile():
    labels = labels_at(1000, (300, 300))
    hit = windows(labels)[0][0]
    near, far = (normalised(labels, [hit, i]) for i in (360, 900))  # the window ends at 350
    assert 100.0 > near > far
    before = score_series(labels, [hit, 10], STANDARD, probation=0.0)
    assert before.raw == pytest.approx(STANDARD.tp * sigma(-1.0) - STANDARD.fp)
    low_fp = normalised(labels, [hit, 900], PROFILES[1])
    assert low_fp < far  # the same false alarm costs twice as much
    assert normalised(labels, [], PROFILES[2]) == 0.0
    many = normalised(labels, list(range(400, 1000, 20)))  # thirty false alarms, no hit
    assert many < 0.0  # worse than staying silent


def test_detections_in_the_probationary_period_are_ignored():
    labels = labels_at(1000, (600, 600))
    hit = windows(labels)[0][0]
    scored = score_series(labels, [50, hit], STANDARD, probation=0.15)
    assert scored.false_alarms == 0 and scored.detected == 1


@given(st.lists(st.integers(0, 1), min_size=1, max_size=300))
def test_onsets_are_where_a_run_of_alarms_starts(verdicts):
    found = onsets(verdicts)
    assert len(found) == len(label_ranges(verdicts))
    assert all(verdicts[i] and (i == 0 or not verdicts[i - 1]) for i in found)


def test_the_suite_is_made_from_its_seed_with_every_family_labelled():
    one, again, other = suite(7, 2), suite(7, 2), suite(8, 2)
    assert [s.values for s in one] == [s.values for s in again]
    assert [s.values for s in one] != [s.values for s in other]
    assert sorted({s.family for s in one}) == sorted(FAMILIES)
    for s in one:
        assert any(s.labels) and not any(s.labels[: int(0.15 * len(s.labels))]), s.name
        assert s.ts_ms == sorted(s.ts_ms)
        gaps = {b - a for a, b in zip(s.ts_ms, s.ts_ms[1:], strict=False)}
        assert (len(gaps) > 1) == (s.family == "missing"), s.name  # gaps only where meant


def test_the_detectors_are_scored_on_the_suite():
    runs = [run_series(s) for s in suite(1, 1)]
    total, families = evaluate_series(runs)
    assert set(families) == set(FAMILIES)
    assert total.windows["standard"].detected + total.windows["standard"].missed == 9
    assert families["stuck"].windows["standard"].detected == 1  # a flatline is plain to see
    assert -100.0 < total.windows["standard"].normalised <= 100.0
    assert total.clean_rows > 0


def test_held_out_folds_choose_on_the_other_files_and_score_on_their_own(tmp_path):
    from simulators.evaluation import evaluate_skab_file
    from simulators.tuning import cross_validate, grid
    from tests.unit.test_replay import skab_file
    from twin.errors import ConfigurationError

    files = [
        skab_file(tmp_path / f"{n}.csv", rows=700, anomaly_from=480 + 20 * n, anomaly_to=600)
        for n in range(4)
    ]
    configs = grid()[:4]
    folds = cross_validate(files, 2, configs)
    assert [sorted(f.name for f in fold.held_out) for fold in folds] == [
        ["0.csv", "2.csv"], ["1.csv", "3.csv"],
    ]  # fmt: skip
    for fold in folds:
        assert fold.chosen in configs
        held = [evaluate_skab_file(f, fold.chosen).counts for f in fold.held_out]
        assert fold.held.tp == sum(c.tp for c in held) and fold.held.fp == sum(c.fp for c in held)
        assert fold.held.tp + fold.held.fp + fold.held.tn + fold.held.fn == 2 * 300
    with pytest.raises(ConfigurationError, match="folds"):
        cross_validate(files, 5, configs)
