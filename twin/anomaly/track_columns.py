"""The metric tracks of many twins as columns: one row per (device, metric), one numpy array
per field of :class:`~twin.anomaly.state.Track`, a flag per metric layer for an open episode,
and the few open episodes themselves beside the columns.

This is the state the vectorised layers (:mod:`twin.anomaly.columns`) update a whole batch at
a time; a row converts to and from the scalar :class:`Track` so that a twin's detector state
still travels in its snapshot.
"""

from __future__ import annotations

import msgspec
import numpy as np

from twin.anomaly.state import Episode, Track

FLOAT_FIELDS = ("mean", "var", "last", "rmean", "rvar", "changed", "mx", "vx", "cxy", "rv",
                "up", "down", "res", "ew", "ewv", "tail_r", "tail_m", "rtail_r",
                "rtail_m")  # fmt: skip
INT_FIELDS = ("n", "last_ts", "rn", "same", "level_run", "rate_run", "held")
COUNT_FIELDS = ("n", "rn", "same", "level_run", "rate_run", "held")
"""Counts of readings, held in 32 bits (4 bytes a field saved on every row) and saturating at
:data:`COUNT_MAX`: every layer compares them with limits of a few hundred at most, so a count
that stops there judges exactly as one that goes on (a 100 Hz sensor reaches it in 248 days).
"""
COUNT_MAX = 2**31 - 1


def counted(count: np.ndarray) -> np.ndarray:
    """One more, saturating at :data:`COUNT_MAX`."""
    return np.minimum(count, COUNT_MAX - 1) + 1


PLAN_FLOATS = ("low", "high")
"""The band inside which no threshold of the row's metric can be crossed."""
PLAN_FLAGS = ("watch", "has_spec", "special", "position", "is_driver", "rule_open")
"""What the device's profile says of the row's metric (set with its layout), and whether a
threshold episode of it is open."""
LAYERS = ("level", "rate", "drift", "flatline", "shift")
"""The metric layers whose open episode each row flags (thresholds are rare: kept per twin)."""


GROWTH = 1.25
"""How much the columns grow when full: little headroom at a million twins, and a row is
copied a handful of times over the life of the process."""
SETTLE_AT = 16_384
"""Restored tracks waiting beyond this many are written at once: a restart that restores every
twin before reading any does not hold them all (and a tuple of each) at the same time."""
_FIELD_AT = {name: at for at, name in enumerate(Track.__struct_fields__)}
_DEFAULT = dict(zip(Track.__struct_fields__, msgspec.structs.astuple(Track()), strict=True))
"""A new row starts as a new :class:`Track` does."""


class TrackColumns:
    """Rows are never moved, so a row number is a stable handle.

    Tracks loaded from snapshots wait in a list and go into the columns together the next time
    the columns are read (a restart restores thousands of twins per batch, and one numpy
    assignment per field of them all costs what a few scalar stores of one row do).
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.size = 0
        self._capacity = 0
        self._f: dict[str, np.ndarray] = {}
        self._i: dict[str, np.ndarray] = {}
        self.open: dict[str, np.ndarray] = {}
        self.episodes: dict[tuple[str, int], Episode] = {}
        """(layer, row) → the open episode: few at any time, so kept apart from the columns."""
        self._pending: list[tuple[int, Track]] = []
        self._pending_blocks: list[tuple[int, np.ndarray]] = []
        self._pending_rows = 0
        self._grow(capacity)

    @property
    def f(self) -> dict[str, np.ndarray]:
        """The float columns by field name."""
        if self._pending_rows:
            self._settle()
        return self._f

    @property
    def i(self) -> dict[str, np.ndarray]:
        """The integer and flag columns by field name."""
        if self._pending_rows:
            self._settle()
        return self._i

    def _grow(self, capacity: int) -> None:
        def grown(old: np.ndarray | None, dtype: type, default: float = 0) -> np.ndarray:
            new: np.ndarray = np.full(capacity, default, dtype=dtype)
            if old is not None:
                new[: self._capacity] = old
            return new

        for name in FLOAT_FIELDS + PLAN_FLOATS:
            self._f[name] = grown(self._f.get(name), np.float64, _DEFAULT.get(name, 0.0))
        for name in INT_FIELDS:
            dtype = np.int32 if name in COUNT_FIELDS else np.int64
            self._i[name] = grown(self._i.get(name), dtype)
        for name in PLAN_FLAGS:
            self._i[name] = grown(self._i.get(name), np.int8)
        for layer in LAYERS:
            self.open[layer] = grown(self.open.get(layer), np.bool_)
        self._capacity = capacity

    def add(self) -> int:
        if self.size == self._capacity:
            self._grow(max(self._capacity + 1024, int(self._capacity * GROWTH)))
        row = self.size
        self.size += 1
        return row

    def add_block(self, n: int) -> int:
        """``n`` rows one after the other; the first one's number."""
        if self.size + n > self._capacity:
            self._grow(max(self.size + n, self._capacity + 1024, int(self._capacity * GROWTH)))
        first = self.size
        self.size += n
        return first

    def load(self, row: int, track: Track) -> None:
        """The row takes the track's values (once the columns are next read)."""
        self._pending.append((row, track))
        self._pending_rows += 1
        if self._pending_rows >= SETTLE_AT:
            self._settle()

    def load_block(self, first: int, rows: np.ndarray) -> None:
        """Rows ``first``, ``first + 1``, ... take the values of ``rows`` (a row per track,
        :class:`Track`'s fields in order, as a snapshot packs them)."""
        self._pending_blocks.append((first, rows))
        self._pending_rows += len(rows)
        if self._pending_rows >= SETTLE_AT:
            self._settle()

    def _settle(self) -> None:
        pending, self._pending = self._pending, []
        blocks, self._pending_blocks = self._pending_blocks, []
        self._pending_rows = 0
        at = [np.arange(first, first + len(block)) for first, block in blocks]
        parts = [block for _, block in blocks]
        if pending:  # from snapshots of older releases, a track at a time
            at.append(np.fromiter((row for row, _ in pending), dtype=np.int64,
                                  count=len(pending)))  # fmt: skip
            astuple = msgspec.structs.astuple
            # the integer fields are counts and millisecond times, exact as float64 (< 2**53)
            parts.append(np.array([astuple(track) for _, track in pending], dtype=np.float64))
        rows, values = np.concatenate(at), np.concatenate(parts)
        for name in FLOAT_FIELDS:
            self._f[name][rows] = values[:, _FIELD_AT[name]]
        for name in INT_FIELDS:
            column = values[:, _FIELD_AT[name]]
            if name in COUNT_FIELDS:
                column = np.minimum(column, COUNT_MAX)
            self._i[name][rows] = column

    def rows(self, rows: list[int]) -> np.ndarray:
        """The rows as a snapshot packs them: a row per track, :class:`Track`'s fields in
        order, as float64."""
        at = np.asarray(rows, dtype=np.int64)
        f, i = self.f, self.i
        out = np.empty((len(at), len(_FIELD_AT)), dtype=np.float64)
        for name in FLOAT_FIELDS:
            out[:, _FIELD_AT[name]] = f[name][at]
        for name in INT_FIELDS:
            out[:, _FIELD_AT[name]] = i[name][at]
        return out

    def load_episode(self, row: int, layer: str, ep: Episode) -> None:
        self.open[layer][row] = True
        self.episodes[(layer, row)] = msgspec.structs.replace(ep)

    def episode(self, row: int, layer: str) -> Episode | None:
        return self.episodes.get((layer, row))

    def drop_episode(self, row: int, layer: str) -> Episode:
        self.open[layer][row] = False
        return self.episodes.pop((layer, row))
