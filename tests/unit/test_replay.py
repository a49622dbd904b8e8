"""Reading recorded CSV series for replay."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from simulators.replay import ReplayTraffic, metric_name, parse_time, read_series
from twin.errors import ConfigurationError

SKAB_HEADER = (
    "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;"
    "Voltage;Volume Flow RateRMS;anomaly;changepoint"
)


def skab_file(path: Path, rows: int = 30, anomaly_from: int = 10, anomaly_to: int = 15) -> Path:
    """A file in SKAB's format: noisy sensors, and from ``anomaly_from`` a closed valve (flow
    and pressure fall, current rises) labelled until ``anomaly_to``."""
    rng = random.Random(rows)
    lines = [SKAB_HEADER]
    start = datetime(2020, 3, 9, 10, 14, 0)
    for i in range(rows):
        bad = anomaly_from <= i < anomaly_to
        flow = 32.0 - (6.0 if bad else 0.0) + rng.gauss(0, 0.3)
        pressure = 0.05 + (0.8 if bad else 0.0) + rng.gauss(0, 0.02)
        current = 1.3 + (0.4 if bad else 0.0) + rng.gauss(0, 0.03)
        moment = (start + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"{moment};{0.026 + rng.gauss(0, 0.0005):.6f};{0.04 + rng.gauss(0, 0.0005):.6f};"
            f"{current:.5f};{pressure:.6f};{79.0 + rng.gauss(0, 0.05):.4f};26.0;"
            f"{233.0 + rng.gauss(0, 1):.3f};{flow:.3f};{1.0 if bad else 0.0};0.0"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def test_skab_format_is_read_with_labels_left_out(tmp_path: Path):
    series = read_series(skab_file(tmp_path / "0.csv"))
    assert series.time_column == "datetime"
    assert list(series.metrics.values()) == [
        "accelerometer1rms", "accelerometer2rms", "current", "pressure", "temperature",
        "thermocouple", "voltage", "volume_flow_raterms",
    ]  # fmt: skip
    assert len(series.rows) == 30
    ts0, values0 = series.rows[0]
    assert ts0 == parse_time("2020-03-09T10:14:00+00:00")
    assert series.rows[1][0] - ts0 == 1000
    assert values0["thermocouple"] == 26.0 and "anomaly" not in values0


def test_comma_files_with_epoch_seconds_mapping_and_blank_cells(tmp_path: Path):
    path = tmp_path / "pump.csv"
    path.write_text("timestamp,temp C,flow\n1700000000,40.5,12\n1700000001,,13\n1700000002,41,x\n")
    series = read_series(path, mapping={"temp C": "temperature_c"})
    assert series.metrics == {"temp C": "temperature_c", "flow": "flow"}
    assert [ts for ts, _ in series.rows] == [
        1_700_000_000_000,
        1_700_000_001_000,
        1_700_000_002_000,
    ]
    assert series.rows[1][1] == {"flow": 13.0} and series.rows[2][1] == {"temperature_c": 41.0}
    assert series.skipped_cells == 2


def test_times_and_names():
    assert parse_time("1700000000123") == 1_700_000_000_123  # milliseconds
    assert parse_time("1700000000.5") == 1_700_000_000_500  # seconds
    assert parse_time("2024-01-01T00:00:00Z") == parse_time("2024-01-01 00:00:00")
    assert parse_time("2024-01-01T01:00:00+01:00") == parse_time("2024-01-01T00:00:00Z")
    assert metric_name("Volume Flow RateRMS") == "volume_flow_raterms"
    assert metric_name("1st sensor") == "m_1st_sensor"


def test_bad_files_say_what_is_wrong(tmp_path: Path):
    (tmp_path / "none.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConfigurationError, match="no time column"):
        read_series(tmp_path / "none.csv")
    (tmp_path / "bad.csv").write_text("time,a\nyesterday,2\n")
    with pytest.raises(ConfigurationError, match=r"bad\.csv:2: cannot read the time"):
        read_series(tmp_path / "bad.csv")
    with pytest.raises(ConfigurationError, match="no column 'when'"):
        read_series(tmp_path / "bad.csv", time_column="when")
    with pytest.raises(ConfigurationError, match="cannot read"):
        read_series(tmp_path / "missing.csv")


def test_replay_paces_by_recorded_time_keeps_or_rebases_and_numbers_rows(tmp_path: Path):
    series = read_series(skab_file(tmp_path / "0.csv", rows=20))
    kept = ReplayTraffic(series, "pump-1", speed=10)
    kept.rebase(1_800_000_000_000)  # kept: rebase does nothing
    msgs = list(kept.messages())
    assert [m.due_s for m in msgs] == pytest.approx([i / 10 for i in range(20)])
    bodies = [json.loads(m.payload) for m in msgs]
    assert [b["seq"] for b in bodies] == list(range(1, 21))
    assert bodies[0]["ts"] == series.rows[0][0]

    moved = ReplayTraffic(series, "pump-1", speed=0, rebase=True, batch=8)
    moved.rebase(1_800_000_000_000)
    msgs = list(moved.messages())
    assert [m.readings for m in msgs] == [8, 8, 4] and all(m.due_s == 0 for m in msgs)
    first = json.loads(msgs[0].payload)
    assert first[0]["ts"] == 1_800_000_000_000 and first[1]["ts"] == 1_800_000_001_000
