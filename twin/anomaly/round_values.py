"""What a round of the vectorised detectors gathers per reading before it runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from twin.profiles import DeviceProfile

Item = tuple[str, DeviceProfile | None, int, Mapping[str, float]]
"""One reading: device id, its profile, device timestamp (ms), values."""


@dataclass(frozen=True, slots=True)
class Layout:
    """The rows of the metrics a device's readings carry (most readings carry the same)."""

    keys: tuple[str, ...]
    profile: str
    rows: Sequence[int]
    lat: int | None
    """The rows of the position (when the reading carries both) and of the driver metric."""
    lon: int | None
    driver: int | None


class RoundValues:
    """A round's values as they are gathered, reading by reading: rows and values per value,
    the rest once per reading (spread over its values with ``np.repeat``)."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.x: list[float] = []
        self.counts: list[int] = []
        self.ts: list[int] = []
        self.dx: list[float] = []
        self.dx_present: list[bool] = []
        self.lat: list[int] = []
        """Per reading: the rows of its position and driver (-1: none), read as arrays."""
        self.lon: list[int] = []
        self.driver: list[int] = []
        self.bare: list[bool] = []  # per reading: no profile (its metrics may have seasons)
        self.interval: list[float] = []  # and the device's usual interval


def related_values(
    context: Sequence[tuple[int, Any, Any]], items: Sequence[Item], last_ts: np.ndarray
) -> dict[int, dict[str, float]]:
    """Per reading of a profile that names ``relations``, the values of those metrics when
    it carries all of them and none is late (``last_ts``: the tracks before the round)."""
    out: dict[int, dict[str, float]] = {}
    for slot, (i, dev, _) in enumerate(context):
        _, profile, ts_ms, values = items[i]
        if profile is None or not profile.relations:
            continue
        got = {}
        for metric in profile.relations:
            row = dev.rows.get(metric)
            if metric in values and row is not None and ts_ms > last_ts[row]:
                got[metric] = values[metric]
        if len(got) == len(profile.relations):
            out[slot] = got
    return out
