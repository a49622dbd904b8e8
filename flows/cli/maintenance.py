"""``twin catalog`` and ``twin service``: maintenance reference data and service history."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec

from api import bodies
from flows.jobs.recommender import evaluate
from flows.runtime.settings import Settings
from storage import recommendations as recs
from storage import reports
from storage.catalog import device_ids, load_profiles
from storage.database import connect_migrated
from storage.reference import load_catalog, load_defaults, record_service, services
from twin.errors import ConfigurationError
from twin.maintenance.catalog import Catalog
from twin.maintenance.service import ServiceRecord
from twin.profiles import ProfileBook


def _when(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(f"--at {text!r}: use an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _show(catalog: Catalog, with_parts: bool) -> None:
    by_category: dict[str, int] = {}
    for part in catalog.parts.values():
        by_category[part.category] = by_category.get(part.category, 0) + 1
    categories = ", ".join(f"{c} {n}" for c, n in sorted(by_category.items()))
    low = sum(1 for s in catalog.stock.values() if s.on_hand <= s.reorder_point)
    print(f"{len(catalog.parts)} parts: {categories}")
    print(
        f"{len(catalog.dealers)} dealers, {len(catalog.stock)} stock levels "
        f"({low} at or below their reorder point)"
    )
    print(
        f"{len(catalog.seasons)} seasonal and {len(catalog.terrains)} terrain adjustments, "
        f"{len(catalog.rules)} business rules, {len(catalog.schedules)} maintenance schedules"
    )
    if not with_parts:
        return
    print(f"\n{'code':<16} {'category':<12} {'km':>8} {'months':>7} {'hours':>7} {'cost':>8}  name")
    for p in sorted(catalog.parts.values(), key=lambda p: (p.category, p.code)):
        intervals = f"{_num(p.interval_km):>8} {_num(p.interval_months):>7} "
        intervals += f"{_num(p.interval_hours):>7}"
        print(f"{p.code:<16} {p.category:<12} {intervals} {p.cost:>8,.0f}  {p.name}")


def run_catalog(args: argparse.Namespace, settings: Settings) -> int:
    with connect_migrated(settings.require_database()) as conn:
        if args.action == "load":
            written = load_defaults(conn, replace=args.replace)
            print(", ".join(f"{table} {n}" for table, n in written.items()) + " rows written")
            return 0
        catalog = load_catalog(conn)
    if args.json:
        print(bodies.dumps(_catalog_body(catalog)))
        return 0
    _show(catalog, args.parts)
    return 0


def _catalog_body(catalog: Catalog) -> dict[str, Any]:
    return {
        "parts": [msgspec.to_builtins(p) for _, p in sorted(catalog.parts.items())],
        "dealers": [msgspec.to_builtins(d) for _, d in sorted(catalog.dealers.items())],
        "stock_levels": len(catalog.stock),
        "business_rules": len(catalog.rules),
        "schedules": len(catalog.schedules),
    }


def _service_line(r: ServiceRecord) -> str:
    where = [
        f"{r.odometer_km:,.0f} km" if r.odometer_km is not None else "",
        f"{r.operating_hours:,.0f} h" if r.operating_hours is not None else "",
        r.dealer or "",
    ]
    place = ", ".join(w for w in where if w)
    line = f"{r.at:%Y-%m-%d %H:%M}  {r.service_type:<9} {' '.join(r.parts_replaced)}"
    return line + (f"  ({place})" if place else "") + (f"  {r.notes}" if r.notes else "")


def run_service(args: argparse.Namespace, settings: Settings) -> int:
    with connect_migrated(settings.require_database()) as conn:
        if args.action == "list":
            rows = services(conn, args.device)
            if args.json:
                print(bodies.dumps(bodies.items(rows)))
                return 0
            for r in rows:
                print(_service_line(r))
            print(f"{len(rows)} service(s)")
            return 0
        known = load_catalog(conn).parts
        unknown = [p for p in args.parts if p not in known]
        if unknown:
            raise ConfigurationError(
                f"unknown part codes: {', '.join(unknown)} (see twin catalog show --parts)"
            )
        record = ServiceRecord(
            device_id=args.device,
            at=_when(args.at),
            parts_replaced=tuple(args.parts),
            service_type=args.type.upper(),
            odometer_km=args.odometer,
            operating_hours=args.hours,
            cost=args.cost,
            dealer=args.dealer,
            notes=args.notes or "",
            source="cli",
        )
        fresh = record_service(conn, record)
        recs.enqueue(conn, [args.device], "service")
    state = "recorded" if fresh else "already recorded"
    print(f"service of {args.device} at {record.at:%Y-%m-%d %H:%M}: {state}")
    return 0


def _show_recommendation(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(bodies.dumps(row))
        return
    for key, value in row.items():
        if key != "reasoning" and value is not None:
            print(f"{key:<16} {value}")
    print("reasoning:")
    for step in row["reasoning"]:
        print(f"  {step['factor']:<9} {step['value']:>8g}  -> {step['confidence']:5.1f}  "
              f"{step['why']}")  # fmt: skip


def run_recommendations(args: argparse.Namespace, settings: Settings) -> int:
    with connect_migrated(settings.require_database()) as conn:
        if args.action == "list":
            rows = recs.list_recommendations(
                conn, device=args.device, status=None if args.status == "all" else args.status,
                limit=args.limit,
            )  # fmt: skip
            if args.json:
                print(bodies.dumps(bodies.recommendations(rows)))
                return 0
            print(f"{'id':>6} {'device':<14} {'#':>2} {'part':<16} {'conf':>5} {'due':<10} "
                  f"{'cost':>8} {'stock':<8} {'status':<9} name")  # fmt: skip
            for r in rows:
                due = f"{r.due:%Y-%m-%d}" if r.due else "-"
                stock = r.stock + ("!" if r.reorder else "")
                print(f"{r.id:>6} {r.device_id:<14} {r.rank:>2} {r.part:<16} "
                      f"{r.final_confidence:>5.1f} {due:<10} {r.cost:>8,.0f} {stock:<8} "
                      f"{r.status:<9} {r.name}")  # fmt: skip
            print(f"{len(rows)} recommendation(s) (stock ! = reorder)")
            return 0
        if args.action == "show":
            _show_recommendation(recs.show(conn, args.id), args.json)
            return 0
        if args.action in ("accept", "reject", "modify"):
            feedback = {"accept": "accepted", "reject": "rejected", "modify": "modified"}
            if args.action == "modify" and not args.part:
                raise ConfigurationError("modify needs --part: the part fitted instead")
            recs.give_feedback(
                conn, args.id, feedback[args.action], args.by, reason=args.reason or "",
                alternative_part=args.part, actual_cost=args.cost,
            )  # fmt: skip
            print(f"recommendation {args.id}: {feedback[args.action]}")
            return 0
        if args.action == "stats":
            per_part, per_rule = recs.acceptance(conn)
            if args.json:
                print(bodies.dumps(bodies.acceptance(per_part, per_rule)))
                return 0
            for title, table in (("part", per_part), ("business rule", per_rule)):
                print(f"{title:<48} {'accepted':>8} {'rejected':>8} {'modified':>8} "
                      f"{'rate':>6} {'cost':>8}")  # fmt: skip
                for name, accepted, rejected, modified, cost in table:
                    total = accepted + rejected + modified
                    rate = f"{100 * accepted / total:.0f}%" if total else "-"
                    print(f"{name[:48]:<48} {accepted:>8} {rejected:>8} {modified:>8} "
                          f"{rate:>6} {_num(cost):>8}")  # fmt: skip
                print()
            return 0
        # refresh: rank now (for the devices named, or every device)
        devices = args.device or device_ids(conn)
        done = evaluate(conn, devices, ProfileBook(load_profiles(conn)), load_catalog(conn))
    print(f"{done.devices} device(s): {done.opened} opened, {done.updated} updated, "
          f"{done.unchanged} unchanged, {done.cleared} cleared")  # fmt: skip
    return 0


def run_rollup(args: argparse.Namespace, settings: Settings) -> int:
    from flows.jobs import rollups

    if args.until and not args.since:
        raise ConfigurationError("--until goes with --since")
    with connect_migrated(settings.require_database()) as conn:
        if args.since:
            since = _when(args.since)
            until = _when(args.until) if args.until else datetime.now(UTC)
            if until <= since:
                raise ConfigurationError("--until must be after --since")
            done = rollups.backfill(conn, since, until, settings.window_minutes)
        else:
            done = rollups.run_once(conn, window_minutes=settings.window_minutes)
    print(f"rolled up {done.hours} hours, {done.late_hours} late device-hours, {done.days} days")
    return 0


def _print_report(report: dict[str, Any]) -> None:
    if "device_id" in report:
        print(f"Daily report {report['day']}: {report['device_id']} ({report['kind']}), "
              f"{report['readings']} readings, uptime {report['uptime_pct']} %, "
              f"efficiency {report['efficiency_rating']}")  # fmt: skip
        for metric, m in report["metrics"].items():
            print(f"  {metric:<18} n {m['n']:>6}  mean {m['mean']:>10.3f}  "
                  f"min {m['min']:>10.3f}  max {m['max']:>10.3f}")  # fmt: skip
        for a in report["anomalies"]:
            print(f"  anomaly  {a['detector']:<10} {a['severity']:<9} x{a['count']}")
        for a in report["alerts"]:
            print(f"  alert    {a['rule']:<22} {a['severity']:<9} {a['status']} x{a['count']}")
        for r in report["recommendations"]:
            print(f"  part     {r['part']:<16} {r['confidence']:5.1f}  due {r['due'] or '-'}"
                  + ("  (reorder)" if r["reorder"] else ""))  # fmt: skip
        return
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(report["by_kind"].items()))
    devices = f"{report['devices_reporting']} devices reporting ({kinds})"
    print(f"Fleet daily report {report['day']}: {devices}, {report['readings']} readings, "
          f"uptime {report['uptime_pct']} %")  # fmt: skip
    print(f"  anomalies: {report['anomalies'] or 'none'}")
    print(f"  alerts opened: {report['alerts'] or 'none'}")
    print(f"  recommendations open: {report['recommendations_open']} "
          f"({report['reorders']} needing a reorder)")  # fmt: skip
    for a in report["attention"]:
        print(f"  attention: {a['device_id']:<14} {a['alerts']} alerts, {a['anomalies']} anomalies")


def run_report(args: argparse.Namespace, settings: Settings) -> int:
    from flows.jobs import rollups

    try:
        day = date.fromisoformat(args.date) if args.date else datetime.now(UTC).date()
    except ValueError:
        raise ConfigurationError(f"--date {args.date!r}: use YYYY-MM-DD") from None
    with connect_migrated(settings.require_database()) as conn:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        end = min(start + timedelta(days=1), datetime.now(UTC))
        if end <= start:
            raise ConfigurationError(f"{day} has not begun")
        rollups.backfill(conn, start, end, settings.window_minutes)  # the day so far
        fleet = reports.generate_daily(conn, day)
        report = fleet
        if args.device:
            try:
                report = reports.load(conn, day, args.device)
            except LookupError:
                raise ConfigurationError(
                    f"no report for {args.device} on {day}: it sent no readings that day"
                ) from None
    if args.json:
        print(bodies.dumps(bodies.report(day, args.device, report)))
        return 0
    _print_report(report)
    return 0
