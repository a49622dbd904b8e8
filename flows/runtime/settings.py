"""Engine settings: the only place that reads the environment.

Every setting has a ``TWIN_*`` variable; the CLI may override some with flags. URLs left unset
mean "no such server configured" (``twin demo`` then starts an embedded one).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from api.config import ApiConfig
from twin import defaults
from twin.errors import ConfigurationError


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``: the only form any message or log shows."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}{slash}{tail}"


@dataclass(frozen=True)
class MqttEndpoint:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None

    @classmethod
    def parse(cls, url: str, ca_file: str | None = None) -> MqttEndpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ConfigurationError(
                f"MQTT URL must start with mqtt:// or mqtts://, got {mask_url(url)!r}"
            )
        tls = parts.scheme in ("mqtts", "ssl")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise ConfigurationError(f"MQTT URL has a bad port: {mask_url(url)!r}") from exc
        if not parts.hostname:
            raise ConfigurationError(f"MQTT URL has no host: {mask_url(url)!r}")
        ca_in_url = parse_qs(parts.query).get("ca_file")
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            ca_file=ca_file or (ca_in_url[0] if ca_in_url else None),
        )


_ENV: dict[str, tuple[str, type]] = {
    "mqtt_url": ("TWIN_MQTT_URL", str),
    "database_url": ("TWIN_DATABASE_URL", str),
    "redis_url": ("TWIN_REDIS_URL", str),
    "metrics_port": ("TWIN_METRICS_PORT", int),
    "api": ("TWIN_API", str),
    "api_host": ("TWIN_API_HOST", str),
    "api_port": ("TWIN_API_PORT", int),
    "mqtt_ca_file": ("TWIN_MQTT_CA_FILE", str),
    "topic_prefix": ("TWIN_TOPIC_PREFIX", str),
    "mqtt_group": ("TWIN_MQTT_GROUP", str),
    "mqtt_client_id": ("TWIN_MQTT_CLIENT_ID", str),
    "mqtt_session_expiry_s": ("TWIN_MQTT_SESSION_EXPIRY_S", int),
    "mqtt_drain": ("TWIN_MQTT_DRAIN", str),
    "batch_size": ("TWIN_BATCH_SIZE", int),
    "linger_ms": ("TWIN_LINGER_MS", int),
    "redis_prefix": ("TWIN_REDIS_PREFIX", str),
    "twin_ttl_s": ("TWIN_TWIN_TTL_S", int),
    "snapshot_interval_s": ("TWIN_SNAPSHOT_INTERVAL_S", float),
    "history_interval_s": ("TWIN_HISTORY_INTERVAL_S", float),
    "retention_days": ("TWIN_RETENTION_DAYS", int),
    "partitions_ahead_days": ("TWIN_PARTITIONS_AHEAD_DAYS", int),
    "max_payload_bytes": ("TWIN_MAX_PAYLOAD_BYTES", int),
    "max_future_skew_s": ("TWIN_MAX_FUTURE_SKEW_S", int),
    "epoch_interval_s": ("TWIN_EPOCH_INTERVAL_S", float),
    "detectors": ("TWIN_DETECTORS", str),
    "detector_warmup": ("TWIN_DETECTOR_WARMUP", int),
    "alert_rules_reload_s": ("TWIN_ALERT_RULES_RELOAD_S", float),
    "wake_horizon_h": ("TWIN_WAKE_HORIZON_H", float),
    "notify": ("TWIN_NOTIFY", str),
    "recommend": ("TWIN_RECOMMEND", str),
    "rollups": ("TWIN_ROLLUPS", str),
    "window_minutes": ("TWIN_WINDOW_MINUTES", int),
    "hourly_retention_days": ("TWIN_HOURLY_RETENTION_DAYS", int),
    "daily_retention_days": ("TWIN_DAILY_RETENTION_DAYS", int),
    "notify_backoff_s": ("TWIN_NOTIFY_BACKOFF_S", float),
    "notify_timeout_s": ("TWIN_NOTIFY_TIMEOUT_S", float),
    "notify_max_attempts": ("TWIN_NOTIFY_MAX_ATTEMPTS", int),
    "workers": ("TWIN_WORKERS", int),
    "log_level": ("TWIN_LOG_LEVEL", str),
    "log_format": ("TWIN_LOG_FORMAT", str),
}


_EMPTY_MEANS_SOMETHING = frozenset({"mqtt_group", "topic_prefix", "redis_prefix"})
"""Variables whose empty value is a choice (no group: a plain subscription; no prefix)."""


@dataclass(frozen=True)
class Settings:
    mqtt_url: str | None = None
    database_url: str | None = None
    redis_url: str | None = None
    metrics_port: int = 9108  # 0 = no metrics endpoint
    api: str = "on"  # "off": `twin run` serves no HTTP API (run `twin api` apart, or none)
    api_host: str = "0.0.0.0"
    api_port: int = 8080
    mqtt_ca_file: str | None = None
    topic_prefix: str = ""
    mqtt_group: str | None = None  # shared-subscription group; "" = plain; unset = plain alone,
    # "twinstream" in a cluster
    mqtt_client_id: str = "twinstream"
    mqtt_session_expiry_s: int = defaults.MQTT_SESSION_EXPIRY_S
    mqtt_drain: str = ""  # client ids of old sessions to drain at start, comma-separated
    batch_size: int = defaults.BATCH_SIZE
    linger_ms: int = defaults.LINGER_MS
    redis_prefix: str = ""
    twin_ttl_s: int = defaults.TWIN_TTL_S
    snapshot_interval_s: float = defaults.SNAPSHOT_INTERVAL_S
    history_interval_s: float = defaults.HISTORY_INTERVAL_S
    retention_days: int = defaults.RETENTION_DAYS
    partitions_ahead_days: int = defaults.PARTITIONS_AHEAD_DAYS
    max_payload_bytes: int = defaults.MAX_PAYLOAD_BYTES
    max_future_skew_s: int = defaults.MAX_FUTURE_SKEW_S
    epoch_interval_s: float = 10.0
    detectors: str = "on"  # "scalar": the reference layers; "off": none (for comparison)
    detector_warmup: int = 120  # readings per device and metric that only learn
    alert_rules_reload_s: float = 30.0  # how often stored alert rules are checked for edits
    wake_horizon_h: float = 168.0  # twins seen this recently are restored (and watched) at start
    notify: str = "on"  # "off": this engine delivers no notifications (run `twin notify`)
    recommend: str = "on"  # "off": this engine keeps no maintenance recommendations current
    rollups: str = "on"  # "off": this engine computes no hourly / daily tiers and windows
    window_minutes: int = defaults.WINDOW_MINUTES
    hourly_retention_days: int = defaults.HOURLY_RETENTION_DAYS
    daily_retention_days: int = defaults.DAILY_RETENTION_DAYS
    notify_backoff_s: float = 2.0  # first retry delay; doubles per failed attempt
    notify_timeout_s: float = 5.0  # per delivery attempt
    notify_max_attempts: int = 6  # then the notification is given up (and logged as such)
    workers: int = 1
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one JSON object per line

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field, (var, kind) in _ENV.items():
            raw = env.get(var)
            if raw is None or (raw == "" and field not in _EMPTY_MEANS_SOMETHING):
                continue
            try:
                values[field] = kind(raw)
            except ValueError:
                raise ConfigurationError(f"{var}={raw!r} is not a valid {kind.__name__}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.check()
        return settings

    def replace(self, **changes: Any) -> Settings:
        settings = dataclasses.replace(self, **changes)
        settings.check()
        return settings

    def check(self) -> None:
        positive = (
            "batch_size",
            "twin_ttl_s",
            "retention_days",
            "workers",
            "max_payload_bytes",
            "mqtt_session_expiry_s",
            "notify_max_attempts",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{_ENV[name][0]} must be at least 1")
        if self.detectors not in ("on", "scalar", "off"):
            raise ConfigurationError("TWIN_DETECTORS must be on, scalar or off")
        if self.notify_backoff_s <= 0 or self.notify_timeout_s <= 0:
            raise ConfigurationError(
                "TWIN_NOTIFY_BACKOFF_S and TWIN_NOTIFY_TIMEOUT_S must be positive"
            )
        if self.notify not in ("on", "off"):
            raise ConfigurationError("TWIN_NOTIFY must be on or off")
        if self.recommend not in ("on", "off"):
            raise ConfigurationError("TWIN_RECOMMEND must be on or off")
        if self.log_format not in ("text", "json"):
            raise ConfigurationError("TWIN_LOG_FORMAT must be text or json")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigurationError("TWIN_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        if self.rollups not in ("on", "off"):
            raise ConfigurationError("TWIN_ROLLUPS must be on or off")
        if self.window_minutes not in (5, 10, 15, 20, 30, 60):
            raise ConfigurationError("TWIN_WINDOW_MINUTES must be 5, 10, 15, 20, 30 or 60")
        if self.hourly_retention_days < 0 or self.daily_retention_days < 0:
            raise ConfigurationError("rollup retentions must be 0 (forever) or more days")
        if self.wake_horizon_h < 0:
            raise ConfigurationError("TWIN_WAKE_HORIZON_H must be 0 (off) or more")
        if self.alert_rules_reload_s <= 0:
            raise ConfigurationError("TWIN_ALERT_RULES_RELOAD_S must be positive")
        if self.detector_warmup < 0:
            raise ConfigurationError("TWIN_DETECTOR_WARMUP must be 0 or more")
        if self.snapshot_interval_s <= 0 or self.epoch_interval_s <= 0:
            raise ConfigurationError("snapshot and epoch intervals must be positive")
        if self.history_interval_s < 0:
            raise ConfigurationError("TWIN_HISTORY_INTERVAL_S must be 0 (no history) or more")
        if self.api not in ("on", "off"):
            raise ConfigurationError("TWIN_API must be on or off")
        if not 1 <= self.api_port <= 65535:
            raise ConfigurationError("TWIN_API_PORT must be a port number")
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigurationError("TWIN_METRICS_PORT must be a port number (0 = off)")
        if self.topic_prefix and not self.topic_prefix.endswith("/"):
            raise ConfigurationError("TWIN_TOPIC_PREFIX must end with '/'")
        if any(c in self.topic_prefix for c in "+#"):
            raise ConfigurationError("TWIN_TOPIC_PREFIX may not contain MQTT wildcards")
        if self.mqtt_url:
            MqttEndpoint.parse(self.mqtt_url, self.mqtt_ca_file)
        if self.database_url and not self.database_url.startswith(("postgresql", "postgres")):
            raise ConfigurationError("TWIN_DATABASE_URL must be a postgresql:// URL")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError("TWIN_REDIS_URL must be a redis://, rediss:// or unix:// URL")

    @property
    def mqtt(self) -> MqttEndpoint:
        if not self.mqtt_url:
            raise ConfigurationError("TWIN_MQTT_URL is not set")
        return MqttEndpoint.parse(self.mqtt_url, self.mqtt_ca_file)

    def api_config(self) -> ApiConfig:
        """What the API needs of these settings."""
        return ApiConfig(
            database_url=self.require_database(),
            redis_url=self.redis_url,
            redis_prefix=self.redis_prefix,
            history_interval_s=self.history_interval_s,
        )

    def keeping(self) -> dict[str, Any]:
        """How long the PostgreSQL sink keeps what it writes, and how much history."""
        return {
            "retention_days": self.retention_days,
            "partitions_ahead_days": self.partitions_ahead_days,
            "hourly_retention_days": self.hourly_retention_days,
            "daily_retention_days": self.daily_retention_days,
            "history_interval_s": self.history_interval_s,
        }

    def require_database(self) -> str:
        if not self.database_url:
            raise ConfigurationError("TWIN_DATABASE_URL is not set")
        return self.database_url

    def require_services(self) -> None:
        missing = [
            var
            for field, (var, _) in _ENV.items()
            if field in ("mqtt_url", "database_url", "redis_url") and not getattr(self, field)
        ]
        if missing:
            raise ConfigurationError(f"not configured: {', '.join(missing)}")
