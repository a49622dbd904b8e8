"""Prometheus metrics of the engine (names ``twin_*``, no per-device labels)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("twin_messages_received_total", "MQTT messages taken from the broker")
READINGS = Counter("twin_readings_accepted_total", "Readings accepted by the twins")
DEAD_LETTERS = Counter(
    "twin_dead_letters_total", "Messages or readings refused, by reason", ["reason"]
)
ROWS = Counter("twin_rows_written_total", "Rows committed to PostgreSQL, by table", ["table"])
ANOMALIES = Counter(
    "twin_anomalies_total", "Anomaly episodes raised or escalated", ["detector", "severity"]
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
LIVE_WRITES = Counter("twin_live_states_written_total", "Twin hashes written to Redis")
SINK_RETRIES = Counter("twin_sink_retries_total", "Sink writes retried", ["sink"])
SINK_ERRORS = Counter("twin_sink_errors_total", "Sink batches refused by a store", ["sink"])
SINK_SECONDS = Histogram(
    "twin_sink_batch_duration_seconds",
    "Time to write one batch, by sink",
    ["sink"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TWINS = Gauge("twin_twins_active", "Twins held in memory by this process")
SOURCE_BATCH = Histogram(
    "twin_source_batch_messages",
    "Messages per batch taken from the broker (small: keeping up; at the limit: backlog)",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000),
)
MQTT_CONNECTED = Gauge("twin_mqtt_connected", "1 while the MQTT source is connected")


def source_batch(taken: int) -> None:
    MESSAGES.inc(taken)
    SOURCE_BATCH.observe(taken)


def mqtt_state(state: str) -> None:
    MQTT_CONNECTED.set(1 if state == "connected" else 0)
