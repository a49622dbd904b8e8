"""The alert records that travel with a twin's output: small, so the base records can hold them."""

from __future__ import annotations

import msgspec


class AlertTransition(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One change of one alert, as the engine saw it (also the alert's current picture)."""

    alert_id: str
    device_id: str
    rule_id: str
    rule_type: str
    transition: str  # opened, escalated, retriggered, resolved
    severity: str
    peak_severity: str
    occurrences: int
    first_seen_ms: int
    last_seen_ms: int
    at_ms: int
    observed: float | None = None
    detail: str = ""
