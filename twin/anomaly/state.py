"""The detectors' state: small plain data per device and metric, which travels inside the
twin's snapshot. The detector layers hold none of it (only their hyperparameters)."""

from __future__ import annotations

from typing import get_type_hints

import msgspec
import numpy as np

from twin.anomaly.season import Season


class Track(msgspec.Struct, array_like=True, gc=False):
    """Per metric: baseline and spread of the value and of its rate, and stuck-sensor counts."""

    n: int = 0
    mean: float = 0.0
    var: float = 0.0
    last: float = 0.0
    last_ts: int = 0
    rn: int = 0
    rmean: float = 0.0
    rvar: float = 0.0
    same: int = 0
    changed: float = 0.0
    level_run: int = 0
    rate_run: int = 0
    mx: float = 0.0
    vx: float = 0.0
    cxy: float = 0.0
    rv: float = 0.0
    """Against the profile's driver metric x: its mean and variance, the covariance with this
    metric, and the variance of this metric's residual around the line through them."""
    up: float = 0.0
    down: float = 0.0
    """CUSUM of the standardised deviation above and below the baseline (slow drifts)."""
    res: float = 0.0
    """The smallest change seen: the sensor's resolution, below which nothing is significant."""
    ew: float = 0.0
    ewv: float = 0.0
    """The exponentially smoothed deviation from the baseline, and its learnt variance: a
    small lasting shift stands out of it long before it stands out of single values."""
    tail_r: float = 0.0027
    tail_m: float = 0.283
    rtail_r: float = 0.0027
    rtail_m: float = 0.283
    """The share of judged deviations beyond 3 spreads and their mean excess over it: the
    level's own tail and the rate's (:mod:`twin.anomaly.tail`)."""
    held: int = 0
    """Readings in a row that the baselines did not learn from (an open anomaly, a shift
    building up): past the configuration's ``adapt``, they learn again."""


class Relation(msgspec.Struct, array_like=True, gc=False):
    """The relation layer's state of one device (:mod:`twin.anomaly.relation`)."""

    metrics: tuple[str, ...]
    mean: list[float]
    cov: list[float]
    """The metrics' means and covariance (row by row)."""
    n: int = 0
    run: int = 0
    held: int = 0
    """Readings in a row it did not learn from (reporting an anomaly, or as rare as one)."""


class Episode(msgspec.Struct, array_like=True, gc=False):
    """An open anomaly: what raised it, when, and its worst point so far."""

    detector: str
    kind: str
    metric: str
    severity: str
    score: float
    started_ms: int
    expected: float | None
    observed: float | None
    hold: int = 0
    explained: list[float] | None = None
    """A relation's named metrics, each its expected value given the others and what it read
    (pairs in the order of :attr:`metric`), at the worst point so far."""


TRACK_FIELDS = len(Track.__struct_fields__)
PACKED_WIDTHS = (19, TRACK_FIELDS)
"""Fields per packed track in the snapshots of this release and of older ones: fields are
only ever appended to :class:`Track`, so an older row is this one's first fields, and the rest
take their defaults."""
_DEFAULTS = np.array(msgspec.structs.astuple(Track()), dtype=np.float64)
_INT_AT = [k for k, (f, t) in enumerate(get_type_hints(Track).items()) if t is int]


class DetectorState(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    tracks: dict[str, Track] = msgspec.field(default_factory=dict)
    open: dict[str, Episode] = msgspec.field(default_factory=dict)
    last_ts: int = 0
    interval_ms: float = 0.0
    readings: int = 0
    raised: int = 0
    packed: bytes = b""
    """In a snapshot: the tracks of :attr:`packed_metrics` as rows of little-endian float64,
    :class:`Track`'s fields in order (counts and millisecond times are exact as float64).
    Base64 in the JSON, about as long as the numbers as text, but decoded without parsing
    two hundred numbers per twin (:func:`packed_state`, :func:`unpacked_state`)."""
    packed_metrics: tuple[str, ...] = ()
    relation: Relation | None = None
    """The relation layer's state, for a profile that names ``relations``."""
    seasons: dict[str, Season] | None = None
    """Per metric of a device without a profile, its seasonal offsets (:mod:`.season`); None
    until it has one (most twins never do, and an empty mapping per twin costs memory)."""


def packed_rows(rows: np.ndarray) -> bytes:
    """Track rows (one per metric, :class:`Track`'s fields as float64) as a snapshot packs
    them."""
    return np.ascontiguousarray(rows, dtype="<f8").tobytes()


def packed_state(st: DetectorState) -> DetectorState:
    """The state as a snapshot holds it: its tracks packed."""
    if not st.tracks:
        return st
    rows = np.array([msgspec.structs.astuple(t) for t in st.tracks.values()], dtype=np.float64)
    return msgspec.structs.replace(st, tracks={}, packed=packed_rows(rows),
                                   packed_metrics=tuple(st.tracks))  # fmt: skip


def unpacked_rows(st: DetectorState) -> np.ndarray:
    """The packed tracks as a float64 array, a row per metric."""
    rows = np.frombuffer(st.packed, dtype="<f8")
    count = len(st.packed_metrics)
    width = rows.size // count if count else TRACK_FIELDS
    if rows.size != count * width or width not in PACKED_WIDTHS:
        raise ValueError(f"a snapshot packs {rows.size} numbers for {count} tracks")
    rows = rows.reshape(count, width)
    if width < TRACK_FIELDS:
        rows = np.hstack([rows, np.tile(_DEFAULTS[width:], (count, 1))])
    return rows


def unpacked_state(st: DetectorState) -> DetectorState:
    """The state with its packed tracks as :class:`Track` objects (the scalar layers')."""
    if not st.packed_metrics:
        return st
    tracks = dict(st.tracks)
    for metric, row in zip(st.packed_metrics, unpacked_rows(st).tolist(), strict=True):
        for k in _INT_AT:
            row[k] = int(row[k])
        tracks[metric] = Track(*row)
    return msgspec.structs.replace(st, tracks=tracks, packed=b"", packed_metrics=())
