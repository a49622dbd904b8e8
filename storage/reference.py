"""Maintenance reference data and service history in PostgreSQL.

``load_defaults`` stores the shipped catalog (``twin catalog load``, the demo): rows that are
missing are added, rows already there are kept as operators left them unless ``replace``.
``load_catalog`` reads everything back for the recommendation engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import psycopg
from psycopg.types.json import Jsonb

from twin.maintenance import defaults
from twin.maintenance.catalog import (
    Adjustment,
    BusinessRule,
    Catalog,
    Dealer,
    Evidence,
    Part,
    Replacement,
    Schedule,
    Stock,
)
from twin.maintenance.service import ServiceRecord

_PART_COLUMNS = (
    "code, name, category, oem_number, cost, interval_km, interval_months, interval_hours, "
    "critical, seasonal, terrain_specific, kinds, profiles, evidence"
)


def _upsert(replace: bool, key: str, columns: str) -> str:
    if not replace:
        return "ON CONFLICT DO NOTHING"
    updates = ", ".join(
        f"{c.strip()} = EXCLUDED.{c.strip()}"
        for c in columns.split(",")
        if c.strip() not in key.split(",")
    )
    return f"ON CONFLICT ({key}) DO UPDATE SET {updates}"


def _part_row(p: Part) -> tuple[Any, ...]:
    evidence = Jsonb(msgspec.to_builtins(p.evidence))
    return (
        p.code, p.name, p.category, p.oem_number, p.cost, p.interval_km, p.interval_months,
        p.interval_hours, p.critical, p.seasonal, p.terrain_specific, list(p.kinds),
        list(p.profiles), evidence,
    )  # fmt: skip


def _adjustment_rows(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    return (
        (f"{n:03d}-{a.key}", a.key, a.factor, list(a.parts), list(a.categories), list(a.regions),
         a.note)
        for n, a in enumerate(items, 1)
    )  # fmt: skip


def _shipped() -> list[tuple[str, str, str, Iterable[Sequence[Any]]]]:
    """(table, conflict key, columns, rows) of the shipped reference data, in load order."""
    return [
        ("parts", "code", _PART_COLUMNS, (_part_row(p) for p in defaults.PARTS)),
        ("dealers", "code", "code, name, region, city, active",
         ((d.code, d.name, d.region, d.city, d.active) for d in defaults.DEALERS)),
        ("parts_inventory", "part, dealer", "part, dealer, on_hand, minimum, reorder_point",
         ((s.part, s.dealer, s.on_hand, s.minimum, s.reorder_point) for s in defaults.STOCK)),
        ("seasonal_config", "id", "id, season, factor, parts, categories, regions, note",
         _adjustment_rows(defaults.SEASONS)),
        ("terrain_config", "id", "id, terrain, factor, parts, categories, regions, note",
         _adjustment_rows(defaults.TERRAINS)),
        ("business_rules", "name",
         "name, rule_condition, rule_action, priority, active, effective_from, effective_until",
         ((r.name, Jsonb(dict(r.when)), Jsonb(dict(r.then)), r.priority, r.active,
           r.effective_from, r.effective_until) for r in defaults.RULES)),
        ("maintenance_schedules", "applies_to, part",
         "applies_to, part, interval_km, interval_months, interval_hours",
         ((s.applies_to, s.part, s.interval_km, s.interval_months, s.interval_hours)
          for s in defaults.SCHEDULES)),
    ]  # fmt: skip


def load_defaults(conn: psycopg.Connection, *, replace: bool = False) -> dict[str, int]:
    """Store the shipped reference data; returns rows written per table."""
    written: dict[str, int] = {}
    with conn.cursor() as cur:
        for table, key, cols, rows in _shipped():
            marks = ", ".join(["%s"] * len(cols.split(",")))
            builtin = (", builtin", ", true") if table == "parts" else ("", "")
            sql = (
                f"INSERT INTO {table} ({cols}{builtin[0]}) VALUES ({marks}{builtin[1]}) "
                f"{_upsert(replace, key, cols)}"
            )
            count = 0
            for row in rows:
                cur.execute(sql, row)
                count += max(cur.rowcount, 0)
            written[table] = count
    conn.commit()
    return written


def load_catalog(conn: psycopg.Connection) -> Catalog:
    """Everything the recommendation engine reads, as stored now."""
    parts = [
        Part(
            code=r[0], name=r[1], category=r[2], oem_number=r[3], cost=r[4], interval_km=r[5],
            interval_months=r[6], interval_hours=r[7], critical=r[8], seasonal=r[9],
            terrain_specific=r[10], kinds=tuple(r[11]), profiles=tuple(r[12]),
            evidence=tuple(msgspec.convert(e, Evidence) for e in r[13]),
        )
        for r in conn.execute(f"SELECT {_PART_COLUMNS} FROM parts ORDER BY code").fetchall()
    ]  # fmt: skip
    dealers = [
        Dealer(code=r[0], name=r[1], region=r[2], city=r[3], active=r[4])
        for r in conn.execute("SELECT code, name, region, city, active FROM dealers").fetchall()
    ]
    stock = [
        Stock(part=r[0], dealer=r[1], on_hand=r[2], minimum=r[3], reorder_point=r[4])
        for r in conn.execute(
            "SELECT part, dealer, on_hand, minimum, reorder_point FROM parts_inventory"
        ).fetchall()
    ]

    def adjustments(table: str, key: str) -> list[Adjustment]:
        rows = conn.execute(
            f"SELECT {key}, factor, parts, categories, regions, note FROM {table} "
            "WHERE active ORDER BY id"
        ).fetchall()
        return [
            Adjustment(key=r[0], factor=r[1], parts=tuple(r[2]), categories=tuple(r[3]),
                       regions=tuple(r[4]), note=r[5])
            for r in rows
        ]  # fmt: skip

    rules = [
        BusinessRule(name=r[0], when=r[1], then=r[2], priority=r[3], active=r[4],
                     effective_from=r[5], effective_until=r[6])
        for r in conn.execute(
            "SELECT name, rule_condition, rule_action, priority, active, effective_from, "
            "effective_until FROM business_rules"
        ).fetchall()
    ]  # fmt: skip
    schedules = [
        Schedule(applies_to=r[0], part=r[1], interval_km=r[2], interval_months=r[3],
                 interval_hours=r[4])
        for r in conn.execute(
            "SELECT applies_to, part, interval_km, interval_months, interval_hours "
            "FROM maintenance_schedules"
        ).fetchall()
    ]  # fmt: skip
    return Catalog(
        parts,
        dealers,
        stock,
        adjustments("seasonal_config", "season"),
        adjustments("terrain_config", "terrain"),
        rules,
        schedules,
    )


INSERT_SERVICE = (
    "INSERT INTO service_history (device_id, at, service_type, odometer_km, operating_hours, "
    "parts_replaced, cost, dealer, notes, source) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
"""A service is identified by device, time and type: the same event twice is one record."""


def service_row(r: ServiceRecord) -> tuple[Any, ...]:
    return (
        r.device_id, r.at, r.service_type, r.odometer_km, r.operating_hours,
        list(r.parts_replaced), r.cost, r.dealer, r.notes, r.source,
    )  # fmt: skip


def record_service(conn: psycopg.Connection, record: ServiceRecord) -> bool:
    """Store one service; False when it was already recorded."""
    cur = conn.execute(INSERT_SERVICE, service_row(record))
    conn.commit()
    return cur.rowcount == 1


def replacements(
    conn: psycopg.Connection, device_ids: Sequence[str]
) -> dict[str, dict[str, Replacement]]:
    """The latest replacement of each part, per device."""
    rows = conn.execute(
        "SELECT DISTINCT ON (device_id, part) device_id, part, at, odometer_km, operating_hours "
        "FROM service_history, unnest(parts_replaced) AS part WHERE device_id = ANY(%s) "
        "ORDER BY device_id, part, at DESC",
        (list(device_ids),),
    ).fetchall()
    out: dict[str, dict[str, Replacement]] = {}
    for device_id, part, at, km, hours in rows:
        out.setdefault(device_id, {})[part] = Replacement(
            part=part, at=at, odometer_km=km, operating_hours=hours
        )
    return out


def services(conn: psycopg.Connection, device_id: str, limit: int = 50) -> list[ServiceRecord]:
    rows = conn.execute(
        "SELECT device_id, at, parts_replaced, service_type, odometer_km, operating_hours, cost, "
        "dealer, notes, source FROM service_history WHERE device_id = %s ORDER BY at DESC "
        "LIMIT %s",
        (device_id, limit),
    ).fetchall()
    return [
        ServiceRecord(r[0], r[1], tuple(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], r[9])
        for r in rows
    ]
