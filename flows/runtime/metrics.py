"""Prometheus metrics of the engine (names ``twin_*``, no per-device labels)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from prometheus_client import Counter, Gauge, Histogram

from twin.records import TwinOutput

MESSAGES = Counter("twin_messages_received_total", "MQTT messages taken from the broker")
READINGS = Counter("twin_readings_accepted_total", "Readings accepted by the twins")
DEAD_LETTERS = Counter(
    "twin_dead_letters_total", "Messages or readings refused, by reason", ["reason"]
)
ROWS = Counter("twin_rows_written_total", "Rows committed to PostgreSQL, by table", ["table"])
ANOMALIES = Counter(
    "twin_anomalies_total",
    "Anomaly episodes raised or escalated, by detector, kind (high, low, stuck, ...) and severity",
    ["detector", "kind", "severity"],
)
ALERT_TRANSITIONS = Counter(
    "twin_alert_transitions_total", "Alert transitions by the engine", ["transition", "severity"]
)
NOTIFICATIONS = Counter(
    "twin_notifications_total",
    "Notification attempts, by channel and outcome (delivered, failed, gave_up, rate_limited)",
    ["channel", "outcome"],
)
RECOMMENDATIONS = Counter(
    "twin_recommendations_total",
    "Maintenance recommendations written, by change (opened, updated, cleared)",
    ["change"],
)
DUPLICATES = Counter("twin_duplicate_readings_total", "Redelivered readings already stored")
REDELIVERED = Counter(
    "twin_redelivered_readings_total",
    "Readings stored before a crash, delivered again, and not counted twice by their twin",
)
LIVE_WRITES = Counter("twin_live_states_written_total", "Twin hashes written to Redis")
SINK_RETRIES = Counter("twin_sink_retries_total", "Sink writes retried", ["sink"])
SINK_ERRORS = Counter("twin_sink_errors_total", "Sink batches refused by a store", ["sink"])
SINK_SECONDS = Histogram(
    "twin_sink_batch_duration_seconds",
    "Time to write one batch, by sink",
    ["sink"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SINK_BATCH = Histogram(
    "twin_sink_batch_items",
    "Items per sink batch (twin outputs and dead letters), by sink",
    ["sink"],
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000),
)
TWINS = Gauge("twin_twins_active", "Twins held in memory by this process")
TWINS_ONLINE = Gauge(
    "twin_twins_online",
    "Twins whose device was heard from within TWIN_TWIN_TTL_S (the life of its Redis hash)",
)
SOURCE_BATCH = Histogram(
    "twin_source_batch_messages",
    "Messages per batch taken from the broker (small: keeping up; at the limit: backlog)",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000),
)
MQTT_CONNECTED = Gauge("twin_mqtt_connected", "1 while the MQTT source is connected")
MQTT_RECONNECTS = Counter("twin_mqtt_reconnects_total", "MQTT connections made again after a loss")
READINGS_BY_KIND = Counter(
    "twin_readings_by_kind_total", "Readings written, by device kind", ["kind"]
)
LATENCY = Histogram(
    "twin_latency_seconds",
    "From the device timestamp of a device's newest reading in a batch to a stage: the twin "
    "update (twin), the PostgreSQL commit (postgres), the Redis write (redis); sampled: one "
    "twin activation in 64, up to 64 devices per sink batch",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
SNAPSHOT_BYTES = Histogram(
    "twin_snapshot_size_bytes",
    "Encoded size of the twin snapshots written",
    buckets=(256, 512, 1024, 2048, 4096, 8192, 16384, 65536),
)
SNAPSHOT_SECONDS = Histogram(
    "twin_snapshot_duration_seconds",
    "Time to encode one twin snapshot (taken in the twin stage, every TWIN_SNAPSHOT_INTERVAL_S)",
    buckets=(0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01),
)
SOURCE_BUFFERED = Gauge(
    "twin_source_buffered_messages", "Messages read from the broker and not yet handed on"
)


class Presence:
    """When each twin of this process last heard from its device, on the wall clock.

    The twins store one time per activation; the online count is worked out when the gauge is
    scraped, so the stream never has to notice a device going quiet.
    """

    def __init__(self, window_ms: int = 300_000) -> None:
        self.window_ms = window_ms
        self._heard: dict[str, int] = {}

    def heard(self, device_id: str, at_ms: int) -> None:
        self._heard[device_id] = at_ms

    def heard_many(self, device_ids: list[str], at_ms: int) -> None:
        self._heard.update(dict.fromkeys(device_ids, at_ms))

    def online(self, now_ms: int | None = None) -> int:
        if now_ms is None:
            now_ms = time.time_ns() // 1_000_000
        cutoff = now_ms - self.window_ms
        times = list(self._heard.values())  # one C call: safe while worker threads insert
        return sum(1 for t in times if t >= cutoff)


PRESENCE = Presence()
TWINS_ONLINE.set_function(PRESENCE.online)


def source_batch(taken: int) -> None:
    MESSAGES.inc(taken)
    SOURCE_BATCH.observe(taken)


_connected_before = False


def mqtt_state(state: str) -> None:
    global _connected_before
    MQTT_CONNECTED.set(1 if state == "connected" else 0)
    if state == "connected":
        if _connected_before:
            MQTT_RECONNECTS.inc()
        _connected_before = True


LATENCY_SAMPLE = 64
"""Sink stages observe up to this many devices per batch, the twin stage one activation in this
many: the cost stays constant per batch, not per device."""


def latency(stage: str, outputs: Sequence[TwinOutput], now_ms: int) -> None:
    """For a sample of the devices in the batch: the newest reading's age at this stage."""
    histogram = LATENCY.labels(stage)
    step = max(1, len(outputs) // LATENCY_SAMPLE)
    for out in outputs[::step]:
        if out.readings:
            newest = max(r.ts_ms for r in out.readings)
            histogram.observe(max(0, now_ms - newest) / 1000)


def readings_by_kind(outputs: Iterable[TwinOutput]) -> None:
    counts: dict[str, int] = {}
    for out in outputs:
        if out.readings:
            kind = out.kind or "generic"
            counts[kind] = counts.get(kind, 0) + len(out.readings)
    for kind, n in counts.items():
        READINGS_BY_KIND.labels(kind).inc(n)
