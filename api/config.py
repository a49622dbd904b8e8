"""What the API needs to know, handed to it by the composition root (``flows``), which reads
the environment: the API itself reads none."""

from __future__ import annotations

from dataclasses import dataclass

from twin import defaults


@dataclass(frozen=True)
class ApiConfig:
    database_url: str
    redis_url: str | None = None
    redis_prefix: str = ""
    key_cache_s: float = 5.0
    """How long a checked key is trusted before it is looked up again (so a revoked key
    stops working within this time)."""
    max_points: int = 10_000
    """The most points one telemetry read returns (the rest: ask again from ``next``)."""
    max_page: int = 500
    """The most items one list returns."""
    max_replay: int = 50_000
    """The most stored readings one ``/twins/{id}?at=`` replays after its base snapshot."""
    history_interval_s: float = defaults.HISTORY_INTERVAL_S
    """How far apart the history snapshots are (the engine's ``TWIN_HISTORY_INTERVAL_S``)."""
    pool_size: int = 8
    """PostgreSQL connections the API keeps open."""
