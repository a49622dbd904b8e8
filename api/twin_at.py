"""``/twins/{id}?at=``: the twin as it was at a past time.

The base is the newest stored state whose readings all lie at or before ``at`` (a history row,
kept one per ``TWIN_HISTORY_INTERVAL_S``, or the current snapshot); the stored readings after it
are replayed up to ``at``. Values, their times, reading counts and usage figures are exact to
the reading; open alerts and anomalies come from their own tables and are exact too; health is
as of the base, at most one history interval (plus one snapshot interval) before ``at``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from api.problems import Problem
from api.stores import Stores
from storage import catalog, device_reads, twin_history
from twin.as_of import replay
from twin.clock import datetime_to_ms, ms_to_datetime
from twin.profiles import ProfileBook
from twin.state import TwinState, decode_state

AHEAD = timedelta(minutes=5)
"""How far ahead of this server's clock ``at`` may be (device clocks run ahead a little)."""
BUILTIN = ProfileBook()
_TOO_MANY = "more than {} readings lie between the nearest stored state and {}: ask for a time \
nearer a snapshot"


def twin_at(stores: Stores, device_id: str, at: datetime) -> dict[str, Any]:
    if at > datetime.now(UTC) + AHEAD:
        raise Problem(400, "at: that time has not come yet")
    limit = stores.config.max_replay
    with stores.connection() as conn:
        device = device_reads.one(conn, device_id)
        if device is None:
            raise Problem(404, f"no device {device_id!r}")
        if at < device.first_seen:
            raise Problem(404, f"{device_id!r} had sent nothing by {at.isoformat()}")
        base = twin_history.base(conn, device_id, at)
        if base is None:  # younger than its first snapshot: replay from its first reading
            state = TwinState(device_id=device_id, kind=device.kind, profile=device.profile)
            after = device.first_seen - timedelta(milliseconds=1)
        else:
            state, after = decode_state(base.state), base.last_seen
        readings = twin_history.readings(conn, device_id, after, at, limit)
        if base is None and (not readings or readings[0].ts_ms > datetime_to_ms(device.first_seen)):
            raise Problem(
                404, f"the history of {device_id!r} at {at.isoformat()} is no longer kept"
            )
        if len(readings) > limit:
            raise Problem(422, _TOO_MANY.format(limit, at.isoformat()))
        profile = catalog.load_profile(conn, state.profile) or BUILTIN.get(state.profile)
        replayed = replay(state, profile, readings, datetime_to_ms(at))
        open_then = twin_history.open_at(conn, device_id, at)
    return _body(state, at, base, replayed, open_then, stores.config.history_interval_s)


def _body(
    state: TwinState,
    at: datetime,
    base: twin_history.Base | None,
    replayed: int,
    open_then: dict[str, Any],
    interval_s: float,
) -> dict[str, Any]:
    latest = state.latest
    return {
        "device_id": state.device_id,
        "source": "history",
        "at": at,
        "kind": state.kind,
        "profile": state.profile,
        "last_seen_ms": state.last_seen_ms or None,
        "readings": state.readings,
        "values": dict(latest.as_dict()),
        "values_at": {name: ms_to_datetime(ms) for name, ms in latest.times().items()},
        "health": state.health,
        "km_per_day": state.km_per_day,
        "operating_hours": state.operating_hours,
        "load_ema": state.load_ema,
        "alerts_open": open_then["alerts"],
        "anomalies_open": open_then["anomalies"],
        "resolution": {
            "base": base.source if base is not None else "first reading",
            "base_last_seen": base.last_seen if base is not None else None,
            "replayed_readings": replayed,
            "health_as_of": base.last_seen if base is not None else None,
            "history_interval_s": interval_s,
        },
    }
