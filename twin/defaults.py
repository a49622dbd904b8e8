"""Every default the engine ships with, written once: the settings, the parser's limits, the
writers and the jobs all take their default from here (a ``TWIN_*`` variable overrides it)."""

from __future__ import annotations

BATCH_SIZE = 16_000
"""Messages one source batch may hold. A batch only grows this large when the engine is behind;
then the more readings each device has in a batch, the less each costs (one twin step, live
view and Redis write per device and batch). Three batches in flight stay under the receive
maximum (65,534)."""
LINGER_MS = 5
"""How long a source batch waits to fill."""
MQTT_SESSION_EXPIRY_S = 3600
"""How long the broker keeps the engine's session (and its queued messages) while it is away."""
TWIN_TTL_S = 300
"""A twin's live hash expires after this much silence."""
SNAPSHOT_INTERVAL_S = 30.0
HISTORY_INTERVAL_S = 900.0
"""One snapshot per device and this interval is kept as the twin's history (0: none): the twin
at a past time is the nearest one before it with at most this much telemetry replayed."""
RETENTION_DAYS = 30
"""Raw telemetry (and finished notification records) are kept this many days."""
PARTITIONS_AHEAD_DAYS = 3
HOURLY_RETENTION_DAYS = 365
"""The hourly tier and the performance windows (0 = forever)."""
DAILY_RETENTION_DAYS = 0
"""The daily tier (0 = forever)."""
WINDOW_MINUTES = 15
"""Length of a performance window (5, 10, 15, 20, 30 or 60)."""
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_FUTURE_SKEW_S = 300
"""A reading may be this far ahead of its arrival (device clocks drift)."""
