"""How worn a part is: distance, operating hours and months since it was last replaced."""

from __future__ import annotations

from datetime import datetime

import msgspec

from twin.maintenance.catalog import Part, Replacement
from twin.maintenance.records import DeviceFacts

DAYS_PER_MONTH = 30.44


class Wear(msgspec.Struct, frozen=True):
    fraction: float
    days_left: float | None
    clock: str


def wear_of(part: Part, facts: DeviceFacts, now: datetime) -> Wear | None:
    """The part's wear on the clock nearest its end (None: no clock can be read)."""
    last: Replacement | None = facts.replacements.get(part.code)
    clocks: list[Wear] = []
    for interval, reading, at_last, pace, unit in (
        (part.interval_km, facts.odometer_km, last and last.odometer_km, facts.km_per_day, "km"),
        (part.interval_hours, facts.operating_hours, last and last.operating_hours,
         facts.hours_per_day, "h"),
    ):  # fmt: skip
        if interval and reading is not None:
            used = max(0.0, reading - (at_last or 0.0))
            days = (interval - used) / pace if pace and pace > 0 else None
            clocks.append(Wear(used / interval, days, f"{used:,.0f} of {interval:,.0f} {unit}"))
    start = last.at if last else facts.in_service_since
    if part.interval_months and start is not None:
        months = max(0.0, (now - start).total_seconds() / 86400 / DAYS_PER_MONTH)
        days = (part.interval_months - months) * DAYS_PER_MONTH
        clocks.append(
            Wear(
                months / part.interval_months,
                days,
                f"{months:.1f} of {part.interval_months:g} months",
            )
        )
    if not clocks:
        return None
    return max(clocks, key=lambda w: w.fraction)
