"""When an hour of telemetry is rolled up, and so which readings arrive late for it."""

from __future__ import annotations

from twin.clock import MS_PER_HOUR

GRACE_MS = 2 * 60 * 1000
"""How long after an hour ends it is rolled up (in-flight readings land first)."""
MARK_MS = GRACE_MS // 2
"""A writer marks a reading as late once its hour ended this long ago: well before the roll-up,
so no reading can slip between the two."""


def late_cutoff_ms(now_ms: int) -> int:
    """Readings older than this belong to an hour already (about to be) rolled up."""
    return (now_ms - MARK_MS) // MS_PER_HOUR * MS_PER_HOUR


def late_hour(ts_ms: int, cutoff_ms: int) -> int | None:
    """The start of the hour to roll up again for a reading at ``ts_ms``, or None if it is on
    time (``cutoff_ms`` from :func:`late_cutoff_ms`)."""
    return ts_ms // MS_PER_HOUR * MS_PER_HOUR if ts_ms < cutoff_ms else None
