"""The cluster's acknowledgement relay in PostgreSQL (see ``flows.connectors.ack_relay``)."""

from __future__ import annotations

import psycopg

_TAKE = "DELETE FROM ack_relay WHERE process = %s RETURNING tickets"


def take(conn: psycopg.Connection, process: int) -> list[int]:
    """The tickets relayed to ``process``, removed in the same statement."""
    rows = conn.execute(_TAKE, (process,)).fetchall()
    conn.commit()
    return [t for (tickets,) in rows for t in tickets]


def clear(conn: psycopg.Connection, process: int) -> int:
    """Drop what a previous run of ``process`` left (its tickets acknowledge nothing now)."""
    n = conn.execute("DELETE FROM ack_relay WHERE process = %s", (process,)).rowcount
    conn.commit()
    return max(n, 0)
