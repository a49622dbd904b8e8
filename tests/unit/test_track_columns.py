"""The track columns: rows restored from snapshots, read back exactly, through growth."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from twin.anomaly.device_rows import DeviceRows
from twin.anomaly.state import Track
from twin.anomaly.track_columns import TrackColumns

FLOATS = st.floats(allow_nan=False, allow_infinity=False, width=64)
COUNTS = st.integers(min_value=0, max_value=2**53)
TRACKS = st.builds(
    Track, n=COUNTS, mean=FLOATS, var=FLOATS, last=FLOATS, last_ts=COUNTS, rn=COUNTS,
    rmean=FLOATS, same=COUNTS, level_run=COUNTS, rate_run=COUNTS, cxy=FLOATS, res=FLOATS,
)  # fmt: skip


@given(st.lists(TRACKS, min_size=1, max_size=40))
def test_loaded_tracks_read_back_exactly(tracks: list[Track]) -> None:
    cols = TrackColumns(capacity=8)  # grows while rows wait to be written
    rows = [cols.add() for _ in tracks]
    for row, track in zip(rows, tracks, strict=True):
        cols.load(row, track)
    assert cols.tracks(rows) == tracks
    assert cols.tracks(rows[::-1]) == tracks[::-1]


def test_rows_written_before_a_load_keep_their_values() -> None:
    """A load waits for the next read; what the layers wrote to other rows stays."""
    cols = TrackColumns(capacity=4)
    first = [cols.add() for _ in range(3)]
    cols.f["mean"][first] = [1.0, 2.0, 3.0]
    later = [cols.add() for _ in range(5000)]
    rng = random.Random(4)
    loaded = [Track(n=rng.randrange(100), mean=rng.random(), last_ts=rng.randrange(2**41))
              for _ in later]  # fmt: skip
    for row, track in zip(later, loaded, strict=True):
        cols.load(row, track)
    assert cols.f["mean"][first].tolist() == [1.0, 2.0, 3.0]
    assert cols.tracks(later) == loaded
    assert cols.i["last_ts"][later].tolist() == [t.last_ts for t in loaded]


def test_a_device_finds_each_metric_row_made_together_or_apart() -> None:
    rows = DeviceRows()
    for at, metric in enumerate(("speed", "rpm", "temp"), start=40):
        rows.add(metric, at)
    rows.add("fuel", 90)  # joined later, after other devices' rows
    rows.add("oil", 43)  # right after the first three: still one run
    assert [rows.get(m) for m in ("speed", "rpm", "temp", "oil", "fuel", "gps")] == [
        40, 41, 42, 43, 90, None,
    ]  # fmt: skip
    assert dict(rows.items()) == {"speed": 40, "rpm": 41, "temp": 42, "oil": 43, "fuel": 90}
    keys, span = rows.span(("speed", "rpm", "temp", "oil"))
    assert keys is rows.metrics and span == range(40, 44)
    assert rows.span(("rpm", "fuel", "speed")) == (("rpm", "fuel", "speed"), [41, 90, 40])
    assert "fuel" in rows and "gps" not in rows
