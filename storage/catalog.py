"""Device profiles, twin snapshots and what restored twins must catch up on, in PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime, timedelta

import msgspec
import psycopg

from storage.database import connect
from twin.profiles import DeviceProfile, profile_from_mapping
from twin.records import CatchUp, Reading


def sync_builtin_profiles(conn: psycopg.Connection, profiles: Iterable[DeviceProfile]) -> int:
    """Store the shipped profiles; an operator's own profiles (builtin = false) are left alone."""
    rows = [(p.name, p.kind, p.description, p.to_json().decode()) for p in profiles]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO device_profiles (name, kind, description, definition, builtin) "
            "VALUES (%s, %s, %s, %s::jsonb, true) ON CONFLICT (name) DO UPDATE SET "
            "kind = excluded.kind, description = excluded.description, "
            "definition = excluded.definition, updated_at = now() "
            "WHERE device_profiles.builtin",
            rows,
        )
    return len(rows)


def load_profiles(conn: psycopg.Connection) -> list[DeviceProfile]:
    rows = conn.execute("SELECT definition FROM device_profiles ORDER BY name").fetchall()
    return [profile_from_mapping(row[0]) for row in rows]


def load_profile(conn: psycopg.Connection, name: str) -> DeviceProfile | None:
    row = conn.execute("SELECT definition FROM device_profiles WHERE name = %s", (name,)).fetchone()
    return profile_from_mapping(row[0]) if row is not None else None


SNAPSHOT_PARTS = 2
"""Connections the twin snapshots load over at start. PostgreSQL renders each JSONB snapshot
as text, well over half of the load at 100,000 twins, and one backend renders on one core."""


def load_snapshots(conn: psycopg.Connection, part: int = 0, parts: int = 1) -> dict[str, bytes]:
    """Every twin's latest snapshot, encoded, by device id (used to warm twins on start), or
    those of one ``part`` of ``parts`` (a stable hash of the device id)."""
    query = "SELECT device_id, state::text FROM twin_snapshots"
    args: tuple[int, ...] = ()
    if parts > 1:
        query += " WHERE (hashtext(device_id) & 2147483647) %% %s = %s"
        args = (parts, part)
    out: dict[str, bytes] = {}
    with conn.cursor() as cur:
        cur.execute(query, args)
        for device_id, state in cur:
            out[device_id] = state.encode()
    return out


def load_snapshots_in_parts(url: str, parts: int = SNAPSHOT_PARTS) -> dict[str, bytes]:
    """:func:`load_snapshots` over ``parts`` connections at once, one thread each (the threads
    mostly wait on the server, which renders the parts in parallel)."""
    found: list[dict[str, bytes]] = [{} for _ in range(parts)]
    failed: list[BaseException] = []

    def load(k: int) -> None:
        try:
            with connect(url) as conn:
                found[k] = load_snapshots(conn, k, parts)
        except BaseException as exc:  # raised again on the caller's thread
            failed.append(exc)

    threads = [
        threading.Thread(target=load, args=(k,), name=f"snapshots-{k}") for k in range(parts)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        raise failed[0]
    out = found[0]
    for more in found[1:]:
        out.update(more)
    return out


def recently_seen(conn: psycopg.Connection, since: datetime) -> list[str]:
    """Devices with a snapshot whose newest reading is no older than ``since``."""
    rows = conn.execute("SELECT device_id FROM twin_snapshots WHERE last_seen >= %s", (since,))
    return [device_id for (device_id,) in rows.fetchall()]


LOOKBACK_S = 30
"""How far before a snapshot's transaction the identities of stored rows are gathered: the
broker delivers again what was stored but not yet acknowledged when the engine died, and a
message is acknowledged within a batch or two of its commit; 30 s leave a wide margin."""

_CATCH_UP = (
    "SELECT t.device_id, round(extract(epoch FROM t.ts) * 1000)::bigint, t.seq, t.values::text, "
    "round(extract(epoch FROM t.received_at) * 1000)::bigint, t.ingested_at > s.txn_at "
    "FROM telemetry t JOIN twin_snapshots s USING (device_id) "
    "WHERE t.ingested_at >= %(floor)s AND t.ingested_at >= s.txn_at - %(lookback)s "
    "ORDER BY t.device_id, t.ingested_at, t.ts, t.seq"
)


def load_catch_up(
    conn: psycopg.Connection, snapshot_interval_s: float, lookback_s: float = LOOKBACK_S
) -> dict[str, CatchUp]:
    """What each twin restored from its snapshot must still learn (empty after a clean stop).

    A twin's snapshot covers every row of its device ingested at or before its ``txn_at``, and
    a twin that receives readings snapshots at least every ``snapshot_interval_s``: so rows
    after a snapshot lie within that interval of the newest snapshot, which bounds the scan
    (the BRIN index on ``ingested_at`` reads only those pages).
    """
    newest = conn.execute("SELECT max(txn_at) FROM twin_snapshots").fetchone()
    if newest is None or newest[0] is None:
        return {}
    floor = newest[0] - timedelta(seconds=2 * snapshot_interval_s + lookback_s + 600)
    decode = msgspec.json.Decoder(dict[str, float]).decode
    apply: dict[str, list[Reading]] = {}
    seen: dict[str, set[tuple[int, int]]] = {}
    with conn.cursor() as cur:
        cur.execute(_CATCH_UP, {"floor": floor, "lookback": timedelta(seconds=lookback_s)})
        for device_id, ts_ms, seq, values, received_ms, after in cur:
            seen.setdefault(device_id, set()).add((ts_ms, seq))
            if after:
                apply.setdefault(device_id, []).append(
                    Reading(
                        device_id, ts_ms, decode(values), received_ms, None if seq == -1 else seq
                    )
                )
    return {d: CatchUp(readings=apply.get(d, []), seen=frozenset(ids)) for d, ids in seen.items()}


def device_ids(conn: psycopg.Connection) -> list[str]:
    """Every registered device, in id order."""
    return [d for (d,) in conn.execute("SELECT device_id FROM devices ORDER BY 1").fetchall()]
