"""The MQTT topic layout, written in this one place: ``{prefix}devices/{device_id}/{channel}``."""

from __future__ import annotations

import re

from twin.records import Channel

DEVICE_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class TopicRouter:
    """Map ``{prefix}devices/{device_id}/{channel}`` to its device and channel."""

    CACHE_LIMIT = 500_000

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self._channels = {c.value: c for c in Channel}
        self._cache: dict[str, tuple[str, Channel]] = {}

    def subscription(self) -> str:
        """The topic filter that receives every device topic, including malformed ones."""
        return f"{self.prefix}devices/#"

    def attributes_subscription(self) -> str:
        """The filter of the (retained) device metadata alone."""
        return f"{self.prefix}devices/+/attributes"

    def shared_subscription(self, group: str) -> str:
        """:meth:`subscription`, shared among the members of ``group`` (MQTT 5)."""
        return f"$share/{group}/{self.subscription()}"

    def topic(self, device_id: str, channel: Channel | str) -> str:
        return f"{self.prefix}devices/{device_id}/{channel}"

    def route(self, topic: str) -> tuple[str, Channel] | None:
        hit = self._cache.get(topic)
        if hit is not None:
            return hit
        route = self._route(topic)
        if route is not None:
            if len(self._cache) >= self.CACHE_LIMIT:
                self._cache.clear()
            self._cache[topic] = route
        return route

    def _route(self, topic: str) -> tuple[str, Channel] | None:
        if not topic.startswith(self.prefix):
            return None
        parts = topic[len(self.prefix) :].split("/")
        if len(parts) != 3 or parts[0] != "devices":
            return None
        channel = self._channels.get(parts[2])
        if channel is None or DEVICE_ID_RE.fullmatch(parts[1]) is None:
            return None
        return parts[1], channel
