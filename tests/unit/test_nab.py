"""A corpus in the Numenta benchmark's layout: its files, its windows, its probationary period,
and detections counted the benchmark's way (every reading whose score reaches a threshold)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from simulators.nab import probation_rows, read_corpus
from simulators.series_evaluation import SeriesRun, evaluate_series, run_series
from simulators.synthetic import Series
from twin.errors import ConfigurationError

T0 = datetime(2014, 4, 1, tzinfo=UTC)


def _stamp(i: int) -> str:
    return (T0 + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S")


def write_corpus(root: Path, n: int = 3_000, spike: int = 2_000) -> None:
    """One file of noise at a 5-minute cadence with a spike, and its window."""
    rng = random.Random(3)
    (root / "data" / "artificial").mkdir(parents=True)
    (root / "labels").mkdir()
    lines = ["timestamp,value"]
    for i in range(n):
        lines.append(f"{_stamp(i)},{50 + rng.gauss(0, 2) + (40 if i == spike else 0):.3f}")
    (root / "data" / "artificial" / "spike.csv").write_text("\n".join(lines) + "\n")
    window = [f"{_stamp(spike - 150)}.000000", f"{_stamp(spike + 150)}.000000"]
    (root / "labels" / "combined_windows.json").write_text(
        json.dumps({"artificial/spike.csv": [window]})
    )


def test_the_corpus_is_read_with_its_own_windows_and_probation(tmp_path: Path) -> None:
    write_corpus(tmp_path)
    (f,) = read_corpus(tmp_path)
    assert f.series.name == "artificial/spike.csv" and f.series.family == "artificial"
    assert len(f.series.values) == 3_000 and f.series.cadence_s == pytest.approx(300.0)
    assert f.spans == [(1_850, 2_150)]
    assert f.series.labels[1_850] == 1 and f.series.labels[1_849] == 0
    assert f.probation == 450 == probation_rows(3_000)
    assert probation_rows(22_695) == 750  # the benchmark caps it


def test_the_spike_is_found_both_ways_and_counted_once(tmp_path: Path) -> None:
    write_corpus(tmp_path)
    (f,) = read_corpus(tmp_path)
    run = run_series(f.series)
    run.spans, run.learn = f.spans, f.probation
    total, _ = evaluate_series([run])
    assert total.windows["standard"].detected == 1
    assert total.scored["standard"].detected == 1
    assert total.scored["standard"].false_alarms == 0
    assert total.scored["standard"].normalised > 90


def test_every_reading_past_the_threshold_counts_as_a_detection() -> None:
    n = 1_000
    series = Series("s", "f", 1.0, list(range(n)), [0.0] * n, [0] * n)
    scores = [0.0] * n
    scores[600:610] = [0.8] * 10  # one long alarm outside every window
    verdicts = [int(s > 0) for s in scores]
    run = SeriesRun(series, verdicts, scores, learn=100, spans=[(300, 350)])
    total, _ = evaluate_series([run], threshold=0.5)
    assert total.windows["standard"].false_alarms == 1  # one onset
    assert total.scored["standard"].false_alarms == 10  # ten readings
    assert total.scored["standard"].missed == 1
    quiet, _ = evaluate_series([run], threshold=0.9)
    assert quiet.scored["standard"].false_alarms == 0


def test_a_broken_corpus_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"combined_windows\.json"):
        read_corpus(tmp_path)
    write_corpus(tmp_path)
    (tmp_path / "labels" / "combined_windows.json").write_text(
        json.dumps({"artificial/spike.csv": [], "other/gone.csv": []})
    )
    with pytest.raises(ConfigurationError, match=r"other/gone\.csv"):
        read_corpus(tmp_path)
    (tmp_path / "labels" / "combined_windows.json").write_text(
        json.dumps({"artificial/spike.csv": []})
    )
    path = tmp_path / "data" / "artificial" / "spike.csv"
    path.write_text(path.read_text() + "yesterday,12\n")
    with pytest.raises(ConfigurationError, match="line 3002"):
        read_corpus(tmp_path)
