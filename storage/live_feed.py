"""What live push reads from Redis, asynchronously (on the API's event loop): the alert stream
after an entry, and the live hashes of a few devices in one round trip."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from storage.live_keys import LiveKeys
from storage.live_reads import typed


class LiveFeed:
    def __init__(self, url: str, prefix: str = "") -> None:
        self.client = aioredis.Redis.from_url(url, socket_timeout=5)
        self.keys = LiveKeys(prefix)

    async def newest_alert_id(self) -> str:
        """Where the alert stream is now ("0-0" while it is empty)."""
        newest: Any = await self.client.xrevrange(self.keys.alerts, count=1)
        return newest[0][0].decode() if newest else "0-0"

    async def alerts_after(self, after: str, count: int = 200) -> list[tuple[str, dict[str, Any]]]:
        """Alert transitions after the entry ``after``: (entry id, fields)."""
        found: Any = await self.client.xread({self.keys.alerts: after}, count=count)
        out = []
        for _, entries in found:
            for entry_id, fields in entries:
                body = {k.decode(): v.decode() for k, v in fields.items()}
                body["at_ms"] = int(body.get("at_ms", 0))
                out.append((entry_id.decode(), body))
        return out

    async def twins(self, devices: Sequence[str]) -> list[dict[str, Any] | None]:
        pipe = self.client.pipeline(transaction=False)
        for device in devices:
            pipe.hgetall(self.keys.twin(device))
        return [typed(fields) if fields else None for fields in await pipe.execute()]

    async def close(self) -> None:
        await self.client.aclose()
