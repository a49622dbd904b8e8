"""When a twin's maintenance recommendations are worth looking at again."""

from __future__ import annotations

import zlib

from twin.clock import MS_PER_DAY
from twin.state import TwinState

RECHECK_KM = 500.0
RECHECK_HOURS = 50.0


def recommendation_mark(state: TwinState) -> str:
    """Where the twin stands in coarse usage steps: every 500 km, every 50 operating hours,
    every event-time day (its start spread over the day by device). Recommendations are looked
    at again when it changes, not on every reading: wear moves by a few percent per step of any
    real part's interval."""
    km = int((state.odometer_km or 0.0) // RECHECK_KM)
    hours = int(state.operating_hours // RECHECK_HOURS)
    # each device's day starts at its own hour, so a fleet does not ask all at midnight
    offset = zlib.crc32(state.device_id.encode()) % MS_PER_DAY
    return f"{km}:{hours}:{(state.last_seen_ms + offset) // MS_PER_DAY}"
