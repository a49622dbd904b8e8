"""Reads of the live view in Redis: a twin's hash, the status of many, positions.

The engine writes every field as text (see :mod:`storage.live_store`); these reads give the
numbers back as numbers and leave the text fields as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from storage.live_keys import LiveKeys

TEXT_FIELDS = frozenset(
    {"device_id", "kind", "profile", "status", "alert_severity", "usage_category", "recs_top"}
)


def typed(fields: dict[bytes, bytes]) -> dict[str, Any]:
    """A hash as Redis returns it, with numbers as numbers."""
    out: dict[str, Any] = {}
    for raw_name, raw_value in fields.items():
        name, text = raw_name.decode(), raw_value.decode()
        if name in TEXT_FIELDS:
            out[name] = text
            continue
        try:
            out[name] = int(text)
        except ValueError:
            try:
                out[name] = float(text)
            except ValueError:
                out[name] = {"True": True, "False": False}.get(text, text)
    return out


class LiveReads:
    """What the API reads of the live view; one client, shared by the API's threads."""

    def __init__(self, url: str, prefix: str = "") -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.keys = LiveKeys(prefix)

    def healths(self, device_ids: Sequence[str]) -> list[tuple[str, int | None]]:
        """(status, health) of each device, one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for device_id in device_ids:
            pipe.hmget(self.keys.twin(device_id), ("status", "health"))
        out: list[tuple[str, int | None]] = []
        for status, health in pipe.execute():
            out.append((status.decode() if status else "offline", int(health) if health else None))
        return out

    def status_counts(self) -> dict[str, int]:
        """Live twins by status (a scan of the twin hashes)."""
        counts: dict[str, int] = {}
        keys = [
            key
            for key in self.client.scan_iter(match=self.keys.twin_pattern, count=2000)
            if self.keys.device_of(key.decode()) is not None
        ]
        for at in range(0, len(keys), 1000):
            pipe = self.client.pipeline(transaction=False)
            for key in keys[at : at + 1000]:
                pipe.hget(key, "status")
            for status in pipe.execute():
                if status:
                    counts[status.decode()] = counts.get(status.decode(), 0) + 1
        return counts

    def positions(self, limit: int) -> list[tuple[str, float, float]]:
        """(device, lat, lon) of up to ``limit`` positioned devices."""
        members: list[bytes] = self.client.zrange(self.keys.geo, 0, limit - 1)  # type: ignore[assignment]
        if not members:
            return []
        found = self.client.geopos(self.keys.geo, *members)
        return [
            (member.decode(), float(pos[1]), float(pos[0]))
            for member, pos in zip(members, found, strict=True)
            if pos is not None
        ]

    def close(self) -> None:
        self.client.close()
