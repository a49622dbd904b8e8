"""The Redis key layout, written in this one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LiveKeys:
    """``{prefix}twin:{id}`` hash per device (TTL = silence), ``{prefix}twin:geo`` GEO set of
    positioned devices, ``{prefix}alerts`` stream of alert transitions."""

    prefix: str = ""

    def twin(self, device_id: str) -> str:
        return f"{self.prefix}twin:{device_id}"

    @property
    def geo(self) -> str:
        return f"{self.prefix}twin:geo"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}alerts"

    @property
    def twin_pattern(self) -> str:
        """A SCAN pattern that matches every twin hash (and the GEO set: skip :attr:`geo`)."""
        return f"{self.prefix}twin:*"

    def device_of(self, key: str) -> str | None:
        """The device id of a twin hash key; None for any other key."""
        head = f"{self.prefix}twin:"
        if not key.startswith(head) or key == self.geo:
            return None
        return key[len(head) :]
