"""Services: what a workshop did to a device, from a ``service`` event or a person."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ServiceRecord:
    device_id: str
    at: datetime
    parts_replaced: tuple[str, ...]
    service_type: str = "REGULAR"
    odometer_km: float | None = None
    operating_hours: float | None = None
    cost: float | None = None
    dealer: str | None = None
    notes: str = ""
    source: str = "event"


def service_from_event(device_id: str, at: datetime, body: Mapping[str, Any]) -> ServiceRecord:
    """A ``service`` event on the events topic as a service record (unusable fields are left
    out rather than refusing the event: the event itself is stored as sent)."""

    def number(key: str) -> float | None:
        value = body.get(key)
        return (
            float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )

    parts = body.get("parts_replaced")
    replaced = tuple(str(p) for p in parts) if isinstance(parts, list) else ()
    kind = body.get("service_type")
    dealer = body.get("dealer_code") or body.get("dealer")
    notes = body.get("notes")
    return ServiceRecord(
        device_id=device_id,
        at=at,
        parts_replaced=replaced,
        service_type=str(kind).upper() if isinstance(kind, str) and kind else "REGULAR",
        odometer_km=number("odometer_km"),
        operating_hours=number("operating_hours"),
        cost=number("cost"),
        dealer=str(dealer) if isinstance(dealer, str) else None,
        notes=str(notes) if isinstance(notes, str) else "",
    )
