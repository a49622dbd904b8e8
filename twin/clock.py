"""Conversions between epoch milliseconds and timezone-aware datetimes."""

from __future__ import annotations

from datetime import UTC, datetime

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS_PER_DAY = 86_400_000
MS_PER_HOUR = 3_600_000


def ms_to_datetime(ms: int) -> datetime:
    """UTC-aware datetime for epoch milliseconds (exact, no float rounding)."""
    from datetime import timedelta

    return EPOCH + timedelta(milliseconds=ms)


def datetime_to_ms(dt: datetime) -> int:
    """Epoch milliseconds of an aware datetime; naive datetimes are a bug."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime: twinstream only handles timezone-aware datetimes")
    delta = dt - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def iso_ms(ms: int) -> str:
    """RFC 3339 text for epoch milliseconds, in UTC."""
    return ms_to_datetime(ms).isoformat(timespec="milliseconds")
