"""A twin as it was at a past time: a stored state, with the readings after it folded in.

The replay applies each reading the way the twin did (newest values and their times, reading
counts, odometer and running-hours figures follow device time), so those are exact to the
reading. What the detectors and rules work out (health) is taken from the stored state the
replay starts from; that is the resolution of the history.
"""

from __future__ import annotations

from collections.abc import Iterable

from twin.profiles import DeviceProfile
from twin.records import Reading
from twin.state import TwinState


def replay(
    state: TwinState, profile: DeviceProfile, readings: Iterable[Reading], at_ms: int
) -> int:
    """Fold the readings newer than ``state`` and no newer than ``at_ms`` into it, in the
    order given (device time); returns how many were applied."""
    applied = 0
    since = state.last_seen_ms
    for reading in readings:
        if since < reading.ts_ms <= at_ms:
            state.apply(reading, profile)
            applied += 1
    return applied
