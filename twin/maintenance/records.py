"""The recommender's records: its configuration, what it knows of a device, and what it says."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from datetime import date, datetime

import msgspec

from twin.maintenance.catalog import Replacement


class RecommenderConfig(msgspec.Struct, frozen=True, kw_only=True):
    min_confidence: float = 40.0
    top_n: int = 5
    usage_factors: Mapping[str, float] = msgspec.field(
        default_factory=lambda: {"LOW": 0.85, "MEDIUM": 1.0, "HIGH": 1.15}
    )
    evidence_factor: float = 4.0
    """Odds factor for an anomaly the part explains."""
    feedback_prior: float = 2.0
    """Pseudo-counts of acceptance and of rejection before any feedback (Beta prior)."""
    feedback_limit: float = 4.0
    """The feedback factor stays within [1 / limit, limit]."""
    quiet_days: float = 30.0
    """A part a person accepted or rejected for a device is not recommended to it again for
    this long (it is booked, or the desk said no), unless an anomaly gives new evidence."""

    @property
    def version(self) -> str:
        return f"recs-{zlib.crc32(msgspec.json.encode(self)):08x}"


class DeviceFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What the recommender knows of one device (from its twin, registry and service history)."""

    device_id: str
    kind: str
    profile: str
    model: str = ""
    dealer: str = ""
    region: str = ""
    terrain: str = ""
    season: str = ""
    in_service_since: datetime | None = None
    odometer_km: float | None = None
    km_per_day: float | None = None
    usage_category: str = ""
    operating_hours: float | None = None
    hours_per_day: float | None = None
    replacements: Mapping[str, Replacement] = msgspec.field(default_factory=dict)
    """The latest replacement of each part code."""
    anomalies: tuple[tuple[str, str, str], ...] = ()
    """Open or recent anomalies as (detector, metric, kind)."""
    decided: Mapping[str, datetime] = msgspec.field(default_factory=dict)
    """When a person last accepted, rejected or modified a recommendation of each part."""


class Factor(msgspec.Struct, frozen=True, kw_only=True):
    """One step from base to final confidence: what it was, what it did, and why."""

    factor: str  # wear, season, terrain, usage, evidence, rule, cap
    value: float
    confidence: float
    """The confidence after this step."""
    why: str


class Recommendation(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    part: str
    name: str
    category: str
    rank: int
    base_confidence: float
    final_confidence: float
    wear: float
    due: date | None
    due_in_days: float | None
    cost: float
    critical: bool
    stock: str  # in_stock, low, out, unknown
    reorder: bool
    reasoning: tuple[Factor, ...]
    model_version: str
