"""The API's inputs: device ids, times, cursors and the checks they pass before any query."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import StringConstraints

from api.problems import Problem
from twin.parsing import METRIC_NAME_RE
from twin.topics import DEVICE_ID_RE

NO_NUL = r"^[^\x00]*$"
"""Text a PostgreSQL text column can hold: anything but NUL."""
Plain = Annotated[str, StringConstraints(pattern=NO_NUL)]
"""A text field of a request body."""
DeviceQuery = Annotated[
    str | None, Query(pattern=f"^{DEVICE_ID_RE.pattern}$", description="a device id")
]

DeviceId = Annotated[
    str, Path(pattern=f"^{DEVICE_ID_RE.pattern}$", description="a device id as on the wire")
]
AlertId = Annotated[str, Path(min_length=1, max_length=200)]
Limit = Annotated[int, Query(ge=1, le=500, description="the most items to return")]


def moment(text: str | None, name: str) -> datetime | None:
    """An RFC 3339 time with its offset (``2026-12-03T10:00:00Z``)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise Problem(400, f"{name}: {text[:40]!r} is not an RFC 3339 time") from None
    if value.tzinfo is None:
        raise Problem(400, f"{name}: {text[:40]!r} has no offset (add Z or +hh:mm)")
    if not 1970 <= value.year <= 9000:
        raise Problem(400, f"{name}: {text[:40]!r} is out of range")
    return value.astimezone(UTC)


def metric_names(text: str | None) -> list[str]:
    """``speed_kmh,rpm`` → the names, each a valid metric name."""
    if not text:
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if METRIC_NAME_RE.fullmatch(n) is None]
    if bad:
        raise Problem(400, f"metrics: {bad[0][:70]!r} is not a metric name")
    if len(names) > 64:
        raise Problem(400, "metrics: at most 64 names")
    return names


def cursor_of(device_id: str) -> str:
    return base64.urlsafe_b64encode(device_id.encode()).decode().rstrip("=")


def after_cursor(cursor: str | None) -> str | None:
    """The device id a page cursor continues after."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Problem(400, "cursor: not a cursor this API gave") from None
    if DEVICE_ID_RE.fullmatch(text) is None:
        raise Problem(400, "cursor: not a cursor this API gave")
    return text
