"""The PostgreSQL schema: the target of the Alembic revisions under ``migrations/``.

``telemetry`` is range-partitioned by day on ``ts`` (partitions are named
``telemetry_pYYYYMMDD`` and managed by :mod:`storage.partitions`); one row is one reading with
its values as JSONB, so a reading of ten metrics costs one row, not ten. ``seq`` is -1 when the
device sent none; ``(device_id, ts, seq)`` identifies a reading, so a redelivery is stored once.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP

TZ = TIMESTAMP(timezone=True)
NOW = text("now()")
EMPTY_OBJECT = text("'{}'::jsonb")

metadata = MetaData()

device_profiles = Table(
    "device_profiles",
    metadata,
    Column("name", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("definition", JSONB, nullable=False),
    Column("builtin", Boolean, nullable=False, server_default=text("false")),
    Column("updated_at", TZ, nullable=False, server_default=NOW),
)

devices = Table(
    "devices",
    metadata,
    Column("device_id", Text, primary_key=True),
    Column("kind", Text, nullable=False, server_default="generic"),
    Column("profile", Text, nullable=False, server_default="generic"),
    Column("attributes", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    Column("first_seen", TZ, nullable=False),
    Column("last_seen", TZ, nullable=False),
    Column("created_at", TZ, nullable=False, server_default=NOW),
    Column("updated_at", TZ, nullable=False, server_default=NOW),
    Index("ix_devices_kind_profile", "kind", "profile"),
)

telemetry = Table(
    "telemetry",
    metadata,
    Column("device_id", Text, nullable=False),
    Column("ts", TZ, nullable=False),
    Column("seq", BigInteger, nullable=False, server_default=text("-1")),
    Column("values", JSONB, nullable=False),
    Column("received_at", TZ, nullable=False),
    Column("ingested_at", TZ, nullable=False, server_default=NOW),
    PrimaryKeyConstraint("device_id", "ts", "seq", name="pk_telemetry"),
    Index("ix_telemetry_ts_brin", "ts", postgresql_using="brin"),
    Index("ix_telemetry_ingested_brin", "ingested_at", postgresql_using="brin"),
    postgresql_partition_by="RANGE (ts)",
)
"""The BRIN index on ``ts`` serves whole-fleet time ranges (the hourly roll-ups): a few pages per
partition, next to nothing to maintain, since readings arrive roughly in time order."""

device_events = Table(
    "device_events",
    metadata,
    Column("device_id", Text, nullable=False),
    Column("ts", TZ, nullable=False),
    Column("type", Text, nullable=False),
    Column("body", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    Column("received_at", TZ, nullable=False),
    PrimaryKeyConstraint("device_id", "ts", "type", name="pk_device_events"),
    Index("ix_device_events_type_ts", "type", "ts"),
)

twin_snapshots = Table(
    "twin_snapshots",
    metadata,
    Column("device_id", Text, primary_key=True),
    Column("taken_at", TZ, nullable=False),
    Column("last_seen", TZ, nullable=False),
    Column("state_version", Integer, nullable=False),
    Column("state", JSONB, nullable=False),
    Column("txn_at", TZ, nullable=False, server_default=NOW),
    Index("ix_twin_snapshots_taken_at", "taken_at"),
)
"""``txn_at`` is the writing transaction's time: the snapshot covers every row of its device
ingested at or before it (the engine writes a twin's snapshot only with its last output of a
batch), so the rows ingested after it are what a restarted twin replays."""

twin_history = Table(
    "twin_history",
    metadata,
    Column("device_id", Text, nullable=False),
    Column("bucket", TZ, nullable=False),
    Column("last_seen", TZ, nullable=False),
    Column("taken_at", TZ, nullable=False),
    Column("state", JSONB, nullable=False),
    PrimaryKeyConstraint("device_id", "bucket", name="pk_twin_history"),
    Index("ix_twin_history_bucket", "bucket"),
)
"""Past snapshots, one per device and history interval (``TWIN_HISTORY_INTERVAL_S``): the first
snapshot whose newest reading falls in a bucket is kept, without the detectors' baselines. The
twin as it was at a time is the nearest one before it with the stored readings replayed."""

mqtt_sessions = Table(
    "mqtt_sessions",
    metadata,
    Column("broker", Text, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("expiry_s", Integer, nullable=False),
    Column("last_used", TZ, nullable=False),
    Column("drained_at", TZ),
    PrimaryKeyConstraint("broker", "client_id", name="pk_mqtt_sessions"),
)
"""Persistent MQTT sessions the engine has used: one that is no longer in use and has not
expired may still hold readings, and the engine drains it at start (``storage.sessions``)."""

ack_relay = Table(
    "ack_relay",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("process", Integer, nullable=False),
    Column("tickets", ARRAY(BigInteger), nullable=False),
    Index("ix_ack_relay_process", "process"),
)
"""In a cluster: tickets of messages committed by another process than the one that read them,
written in the committing transaction, taken by the reader to acknowledge them."""

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("received_at", TZ, nullable=False),
    Column("topic", Text, nullable=False),
    Column("device_id", Text),
    Column("reason", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("stored_at", TZ, nullable=False, server_default=NOW),
    Index("ix_dead_letters_received_at", "received_at"),
    Index("ix_dead_letters_reason_received_at", "reason", "received_at"),
    Index("ix_dead_letters_device_id", "device_id", "received_at"),
)

anomalies = Table(
    "anomalies",
    metadata,
    Column("device_id", Text, primary_key=True),
    Column("detector", Text, primary_key=True),
    Column("metric", Text, primary_key=True),
    Column("started_at", TZ, primary_key=True),
    Column("ended_at", TZ),
    Column("kind", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("score", Float, nullable=False),
    Column("expected", Float),
    Column("observed", Float),
    Column("model_version", Text, nullable=False),
    Column("updated_at", TZ, nullable=False, server_default=NOW),
    Column("explanation", JSONB),
    Index("ix_anomalies_started_at", "started_at"),
    Index("ix_anomalies_open", "device_id", postgresql_where=text("ended_at IS NULL")),
    Index(
        "uq_anomalies_open",
        "device_id",
        "detector",
        "metric",
        unique=True,
        postgresql_where=text("ended_at IS NULL"),
    ),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("version", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("config", JSONB, nullable=False),
    Column("shared_state", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    Column("evaluations", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("created_at", TZ, nullable=False, server_default=NOW),
    Column("updated_at", TZ, nullable=False, server_default=NOW),
)

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", Text, primary_key=True),
    Column("definition", JSONB, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("builtin", Boolean, nullable=False, server_default=text("false")),
    Column("updated_at", TZ, nullable=False, server_default=NOW),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("device_id", Text, nullable=False),
    Column("rule_id", Text, nullable=False),
    Column("rule_type", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("peak_severity", Text, nullable=False),
    Column("occurrences", Integer, nullable=False, server_default="1"),
    Column("first_seen", TZ, nullable=False),
    Column("last_seen", TZ, nullable=False),
    Column("observed", Float),
    Column("detail", Text, nullable=False, server_default=""),
    Column("acknowledged_at", TZ),
    Column("acknowledged_by", Text),
    Column("assigned_to", Text),
    Column("resolved_at", TZ),
    Column("resolved_by", Text),
    Column("created_at", TZ, nullable=False, server_default=NOW),
    Column("updated_at", TZ, nullable=False, server_default=NOW),
    CheckConstraint("status IN ('new', 'acknowledged', 'resolved')", name="ck_alerts_status"),
    Index("ix_alerts_status_severity", "status", "severity"),
    Index("ix_alerts_device_status", "device_id", "status"),
    Index("ix_alerts_first_seen", "first_seen"),
    Index(
        "uq_alerts_open",
        "device_id",
        "rule_id",
        unique=True,
        postgresql_where=text("status <> 'resolved'"),
    ),
)

alert_timeline = Table(
    "alert_timeline",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("alert_id", Text, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    Column("at", TZ, nullable=False),
    Column("transition", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("by", Text, nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    UniqueConstraint("alert_id", "transition", "at", "by", name="uq_alert_timeline_step"),
    Index("ix_alert_timeline_alert", "alert_id", "at"),
)

notification_routes = Table(
    "notification_routes",
    metadata,
    Column("id", Text, primary_key=True),
    Column("channel", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("secret", Text, nullable=False, server_default=""),
    Column("min_severity", Text, nullable=False, server_default="warning"),
    Column("profiles", ARRAY(Text), nullable=False, server_default="{}"),
    Column("device_group", Text, nullable=False, server_default=""),
    Column("max_per_device_hour", Integer, nullable=False, server_default="20"),
    Column("remind_every_s", Integer, nullable=False, server_default="0"),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    CheckConstraint("channel IN ('webhook', 'slack', 'email', 'log')", name="ck_routes_channel"),
)

notification_outbox = Table(
    "notification_outbox",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("alert_id", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    Column("route_id", Text, nullable=False),
    Column("transition", Text, nullable=False),
    Column("at", TZ, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", TZ, nullable=False, server_default=NOW),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("created_at", TZ, nullable=False, server_default=NOW),
    Column("done_at", TZ),
    UniqueConstraint("alert_id", "route_id", "transition", "at", name="uq_outbox_once"),
    Index("ix_outbox_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
)

notification_log = Table(
    "notification_log",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("outbox_id", BigInteger, nullable=False),
    Column("alert_id", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("response", Text, nullable=False, server_default=""),
    Column("at", TZ, nullable=False, server_default=NOW),
    Index("ix_notification_log_alert", "alert_id", "at"),
    Index("ix_notification_log_device", "device_id", "at"),
)

# -- maintenance: reference data and service history ------------------------------------

parts = Table(
    "parts",
    metadata,
    Column("code", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("oem_number", Text, nullable=False, server_default=""),
    Column("cost", Float, nullable=False, server_default="0"),
    Column("interval_km", Float),
    Column("interval_months", Float),
    Column("interval_hours", Float),
    Column("critical", Boolean, nullable=False, server_default=text("false")),
    Column("seasonal", Boolean, nullable=False, server_default=text("false")),
    Column("terrain_specific", Boolean, nullable=False, server_default=text("false")),
    Column("kinds", ARRAY(Text), nullable=False, server_default="{vehicle}"),
    Column("profiles", ARRAY(Text), nullable=False, server_default="{}"),
    Column("evidence", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("builtin", Boolean, nullable=False, server_default=text("false")),
    Column("updated_at", TZ, nullable=False, server_default=NOW),
    CheckConstraint("cost >= 0", name="ck_parts_cost"),
    Index("ix_parts_category", "category"),
)

dealers = Table(
    "dealers",
    metadata,
    Column("code", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("region", Text, nullable=False),
    Column("city", Text, nullable=False, server_default=""),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("updated_at", TZ, nullable=False, server_default=NOW),
    Index("ix_dealers_region", "region"),
)

parts_inventory = Table(
    "parts_inventory",
    metadata,
    Column("part", Text, nullable=False),
    Column("dealer", Text, nullable=False),
    Column("on_hand", Integer, nullable=False),
    Column("minimum", Integer, nullable=False, server_default="0"),
    Column("reorder_point", Integer, nullable=False, server_default="0"),
    Column("updated_at", TZ, nullable=False, server_default=NOW),
    PrimaryKeyConstraint("part", "dealer", name="pk_parts_inventory"),
    CheckConstraint(
        "on_hand >= 0 AND minimum >= 0 AND reorder_point >= 0", name="ck_inventory_levels"
    ),
    Index("ix_parts_inventory_dealer", "dealer"),
)


def _adjustments(name: str, key: str) -> Table:
    return Table(
        name,
        metadata,
        Column("id", Text, primary_key=True),
        Column(key, Text, nullable=False),
        Column("factor", Float, nullable=False),
        Column("parts", ARRAY(Text), nullable=False, server_default="{}"),
        Column("categories", ARRAY(Text), nullable=False, server_default="{}"),
        Column("regions", ARRAY(Text), nullable=False, server_default="{}"),
        Column("note", Text, nullable=False, server_default=""),
        Column("active", Boolean, nullable=False, server_default=text("true")),
        CheckConstraint("factor > 0", name=f"ck_{name}_factor"),
    )


seasonal_config = _adjustments("seasonal_config", "season")
terrain_config = _adjustments("terrain_config", "terrain")

business_rules = Table(
    "business_rules",
    metadata,
    Column("name", Text, primary_key=True),
    Column("rule_condition", JSONB, nullable=False),
    Column("rule_action", JSONB, nullable=False),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("effective_from", TZ),
    Column("effective_until", TZ),
    Column("updated_at", TZ, nullable=False, server_default=NOW),
    CheckConstraint("priority >= 0", name="ck_business_rules_priority"),
)

maintenance_schedules = Table(
    "maintenance_schedules",
    metadata,
    Column("applies_to", Text, nullable=False),
    Column("part", Text, nullable=False),
    Column("interval_km", Float),
    Column("interval_months", Float),
    Column("interval_hours", Float),
    PrimaryKeyConstraint("applies_to", "part", name="pk_maintenance_schedules"),
)

service_history = Table(
    "service_history",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("device_id", Text, nullable=False),
    Column("at", TZ, nullable=False),
    Column("service_type", Text, nullable=False, server_default="REGULAR"),
    Column("odometer_km", Float),
    Column("operating_hours", Float),
    Column("parts_replaced", ARRAY(Text), nullable=False, server_default="{}"),
    Column("cost", Float),
    Column("dealer", Text),
    Column("notes", Text, nullable=False, server_default=""),
    Column("source", Text, nullable=False, server_default="event"),
    Column("created_at", TZ, nullable=False, server_default=NOW),
    UniqueConstraint("device_id", "at", "service_type", name="uq_service_once"),
    Index("ix_service_history_device", "device_id", "at"),
)

# -- maintenance recommendations -----------------------------------------------------------

part_recommendations = Table(
    "part_recommendations",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("device_id", Text, nullable=False),
    Column("part", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("rank", Integer, nullable=False),
    Column("base_confidence", Float, nullable=False),
    Column("final_confidence", Float, nullable=False),
    Column("wear", Float, nullable=False),
    Column("due", Date),
    Column("due_in_days", Float),
    Column("cost", Float, nullable=False),
    Column("critical", Boolean, nullable=False),
    Column("stock", Text, nullable=False),
    Column("reorder", Boolean, nullable=False),
    Column("reasoning", JSONB, nullable=False),
    Column("model_version", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="open"),
    Column("created_at", TZ, nullable=False, server_default=NOW),
    Column("updated_at", TZ, nullable=False, server_default=NOW),
    Column("closed_at", TZ),
    CheckConstraint(
        "status IN ('open', 'accepted', 'rejected', 'modified', 'cleared')",
        name="ck_part_recommendations_status",
    ),
    Index(
        "uq_part_recommendations_open",
        "device_id",
        "part",
        unique=True,
        postgresql_where=text("status = 'open'"),
    ),
    Index("ix_part_recommendations_status", "status", "final_confidence"),
    Index("ix_part_recommendations_part", "part", "status"),
)

recommendation_feedback = Table(
    "recommendation_feedback",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column(
        "recommendation_id",
        BigInteger,
        ForeignKey("part_recommendations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("device_id", Text, nullable=False),
    Column("part", Text, nullable=False),
    Column("feedback", Text, nullable=False),
    Column("by", Text, nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("alternative_part", Text),
    Column("actual_cost", Float),
    Column("at", TZ, nullable=False, server_default=NOW),
    CheckConstraint(
        "feedback IN ('accepted', 'rejected', 'modified')", name="ck_recommendation_feedback"
    ),
    Index("ix_recommendation_feedback_part", "part", "feedback"),
)

recommendation_queue = Table(
    "recommendation_queue",
    metadata,
    Column("device_id", Text, primary_key=True),
    Column("reason", Text, nullable=False, server_default=""),
    Column("queued_at", TZ, nullable=False, server_default=NOW),
)

# -- rollups: downsampled tiers and windowed performance metrics ----------------------------


def _tier(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("device_id", Text, nullable=False),
        Column("bucket", TZ, nullable=False),
        Column("metric", Text, nullable=False),
        Column("n", BigInteger, nullable=False),
        Column("mean", Float, nullable=False),
        Column("min", Float, nullable=False),
        Column("max", Float, nullable=False),
        Column("sum", Float, nullable=False),
        PrimaryKeyConstraint("device_id", "bucket", "metric", name=f"pk_{name}"),
        Index(f"ix_{name}_bucket", "bucket"),
    )


telemetry_hourly = _tier("telemetry_hourly")
telemetry_daily = _tier("telemetry_daily")

performance_metrics = Table(
    "performance_metrics",
    metadata,
    Column("device_id", Text, nullable=False),
    Column("window_start", TZ, nullable=False),
    Column("window_end", TZ, nullable=False),
    Column("readings", Integer, nullable=False),
    Column("average_load", Float),
    Column("average_temperature", Float),
    Column("average_vibration", Float),
    Column("uptime_pct", Float, nullable=False),
    Column("anomaly_count", Integer, nullable=False),
    Column("efficiency_rating", Float, nullable=False),
    Column("metrics", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    Column("updated_at", TZ, nullable=False, server_default=NOW),
    PrimaryKeyConstraint("device_id", "window_start", name="pk_performance_metrics"),
    Index("ix_performance_metrics_window", "window_start"),
)

rollup_dirty = Table(
    "rollup_dirty",
    metadata,
    Column("device_id", Text, nullable=False),
    Column("bucket", TZ, nullable=False),
    PrimaryKeyConstraint("device_id", "bucket", name="pk_rollup_dirty"),
)

rollup_state = Table(
    "rollup_state",
    metadata,
    Column("name", Text, primary_key=True),
    Column("done_until", TZ, nullable=False),
)

maintenance_reports = Table(
    "maintenance_reports",
    metadata,
    Column("report_id", Text, primary_key=True),
    Column("report_type", Text, nullable=False),
    Column("day", Date, nullable=False),
    Column("device_id", Text),
    Column("generated_at", TZ, nullable=False, server_default=NOW),
    Column("content", JSONB, nullable=False),
    CheckConstraint("report_type IN ('DAILY')", name="ck_maintenance_reports_type"),
    Index("ix_maintenance_reports_day", "day", "report_type"),
    Index("ix_maintenance_reports_device", "device_id", "day"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("prefix", Text, nullable=False),
    Column("digest", LargeBinary, nullable=False),
    Column("created_at", TZ, nullable=False, server_default=NOW),
    Column("last_used_at", TZ),
    Column("revoked_at", TZ),
    CheckConstraint("role IN ('viewer', 'operator', 'admin')", name="ck_api_keys_role"),
    UniqueConstraint("digest", name="uq_api_keys_digest"),
)
"""Keys of the HTTP API: only a digest of each is kept (the key is shown once, when made)."""
