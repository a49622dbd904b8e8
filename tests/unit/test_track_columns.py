"""The track columns: rows restored from snapshots, read back exactly, through growth."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

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
    assert [cols.track(r) for r in reversed(rows)] == tracks[::-1]


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
