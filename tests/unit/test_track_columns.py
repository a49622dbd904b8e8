"""The track columns: rows restored from snapshots, read back exactly, through growth."""

from __future__ import annotations

import random

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.anomaly.device_rows import DeviceRows
from twin.anomaly.state import DetectorState, Track, packed_rows, unpacked_rows, unpacked_state
from twin.anomaly.track_columns import COUNT_MAX, TrackColumns, counted

FLOATS = st.floats(allow_nan=False, allow_infinity=False, width=64)
COUNTS = st.integers(min_value=0, max_value=COUNT_MAX)
TRACKS = st.builds(
    Track, n=COUNTS, mean=FLOATS, var=FLOATS, last=FLOATS, last_ts=st.integers(0, 2**53), rn=COUNTS,
    rmean=FLOATS, same=COUNTS, level_run=COUNTS, rate_run=COUNTS, cxy=FLOATS, res=FLOATS,
    ew=FLOATS, ewv=FLOATS, held=COUNTS,
)  # fmt: skip


def tracks_of(cols: TrackColumns, rows: list[int]) -> list[Track]:
    """The rows as a snapshot packs them, unpacked as the scalar layers take them."""
    names = tuple(str(r) for r in rows)
    st = DetectorState(packed=packed_rows(cols.rows(rows)), packed_metrics=names)
    return list(unpacked_state(st).tracks.values())


@given(st.lists(TRACKS, min_size=1, max_size=40))
def test_loaded_tracks_read_back_exactly(tracks: list[Track]) -> None:
    cols = TrackColumns(capacity=8)  # grows while rows wait to be written
    rows = [cols.add() for _ in tracks]
    for row, track in zip(rows, tracks, strict=True):
        cols.load(row, track)
    assert tracks_of(cols, rows) == tracks
    assert tracks_of(cols, rows[::-1]) == tracks[::-1]


@given(st.lists(st.lists(TRACKS, min_size=1, max_size=12), min_size=1, max_size=8))
def test_packed_blocks_and_single_tracks_load_together(devices: list[list[Track]]) -> None:
    """Devices restored from packed snapshots and from older ones (a track at a time), in
    any mix, wait together and are written at the next read."""
    cols = TrackColumns(capacity=4)
    placed = []
    for k, tracks in enumerate(devices):
        if k % 2:
            rows = [cols.add() for _ in tracks]
            for row, track in zip(rows, tracks, strict=True):
                cols.load(row, track)
        else:
            packed = np.array([msgspec.structs.astuple(t) for t in tracks], dtype=np.float64)
            st = DetectorState(packed=packed_rows(packed), packed_metrics=("m",) * len(tracks))
            first = cols.add_block(len(tracks))
            cols.load_block(first, unpacked_rows(st))
            rows = list(range(first, first + len(tracks)))
        placed.append((rows, tracks))
    for rows, tracks in placed:
        assert tracks_of(cols, rows) == tracks
    assert cols.size == sum(len(t) for t in devices)


def test_a_packed_snapshot_that_does_not_add_up_is_refused() -> None:
    st = DetectorState(packed=b"\0" * 8 * 5, packed_metrics=("a",))
    with pytest.raises(ValueError, match="5 numbers for 1 tracks"):
        unpacked_rows(st)


OLD_SNAPSHOT = (
    b'{"tracks":{},"open":{},"last_ts":0,"interval_ms":0.0,"readings":500,"raised":0,"packed":"'
    b"AAAAAABAf0AAAAAAAAAMQAAAAAAAANA/AAAAAAAACEAAAAAAAFi7QAAAAAAAAHlAmpmZmZmZuT8AAAAAAAAAAAAAAAAAAAAAAAAAAA"
    b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAD4PwAAAAAAAAAAexSuR+F6hD8="
    b'","packed_metrics":["temp"]}'
)
"""A twin's detector state as the release before the shift layer and calibration packed it
(19 numbers per track)."""


def test_a_snapshot_of_the_release_before_the_shift_layer_restores_with_defaults() -> None:
    st = msgspec.json.decode(OLD_SNAPSHOT, type=DetectorState)
    [track] = unpacked_state(st).tracks.values()
    assert track == Track(n=500, mean=3.5, var=0.25, last=3.0, last_ts=7_000, rn=400, rmean=0.1,
                          res=0.01, up=1.5)  # fmt: skip
    assert (track.ew, track.tail_r, track.held) == (0.0, Track().tail_r, 0)
    cols = TrackColumns()
    first = cols.add_block(1)
    cols.load_block(first, unpacked_rows(st))
    assert tracks_of(cols, [first]) == [track]


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
    assert tracks_of(cols, later) == loaded
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


def test_counts_saturate_instead_of_wrapping() -> None:
    """Counts live in 32 bits: one restored beyond them, or one that keeps counting, stops at
    the largest (the layers compare counts with limits of a few hundred)."""
    cols = TrackColumns(capacity=4)
    rows = [cols.add() for _ in range(3)]
    for row, n in zip(rows, [2**40, COUNT_MAX, 7], strict=True):
        cols.load(row, Track(n=n, same=n, last_ts=2**41 + n))
    assert cols.i["n"][rows].tolist() == [COUNT_MAX, COUNT_MAX, 7]
    assert cols.i["last_ts"][rows].tolist() == [2**41 + 2**40, 2**41 + COUNT_MAX, 2**41 + 7]
    assert counted(cols.i["same"][rows]).tolist() == [COUNT_MAX, COUNT_MAX, 8]
