"""The ``twin`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from twin.errors import ConfigurationError, TwinstreamError


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} must be at least {minimum}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _port(text: str) -> int:
    value = _int_at_least(1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a TCP port (1-65535)")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be positive")
    return value


def _duration_s(text: str) -> int:
    """``90``, ``90s``, ``30m``, ``2h``, ``1d`` as whole seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    if not number.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: use seconds or 30m, 2h, 1d")
    return int(number) * units[unit]


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} may not be negative")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be in [0, 1)")
    return value


def _factor(text: str) -> float:
    value = _positive_float(text)
    if value <= 1:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="twin",
        description="twinstream: real-time telemetry and digital twins over MQTT, "
        "PostgreSQL and Redis.",
    )
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (TWIN_LOG_LEVEL)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the engine against the configured services")
    run.add_argument("--workers", type=_positive_int, help="workers in this process")
    run.add_argument("--process-id", type=int, help="this process's index in a cluster")
    run.add_argument("--addresses", help="host:port of every cluster process, ';'-separated")

    sub.add_parser("migrate", help="bring the database schema to the newest revision")

    maintain = sub.add_parser(
        "maintain", help="create telemetry partitions ahead and drop those older than the retention"
    )
    maintain.add_argument("--retention-days", type=_positive_int)

    demo = sub.add_parser("demo", help="the whole system on this machine, with simulated devices")
    demo.add_argument("--duration", type=_positive_float, default=60.0, help="seconds (60)")
    demo.add_argument("--devices", type=_positive_int, default=300, help="simulated devices (300)")
    demo.add_argument(
        "--rate",
        type=_positive_float,
        default=1500.0,
        help="readings per second, all devices together (1500)",
    )
    demo.add_argument(
        "--bad-fraction", type=_fraction, default=0.01, help="share of malformed messages (0.01)"
    )
    demo.add_argument("--data-dir", default=".twin-demo", help="where embedded servers keep data")
    demo.add_argument(
        "--scenario", default="demo", help="faults to inject: demo, mixed-faults, a file, or none"
    )
    demo.add_argument(
        "--keep",
        action="store_true",
        help="continue on the previous demo's data instead of starting fresh",
    )
    demo.add_argument(
        "--inspect", action="store_true", help="only show what the last demo stored, then exit"
    )

    sim = sub.add_parser(
        "simulate", help="publish a simulated fleet to TWIN_MQTT_URL, optionally with faults"
    )
    sim.add_argument("--scenario", help="quiet, mixed-faults, load-test or a TOML file")
    sim.add_argument("--devices", type=_positive_int, help="devices (100, or the scenario's)")
    sim.add_argument("--rate", type=_positive_float, help="readings per second, all devices")
    sim.add_argument("--batch", type=_positive_int, help="readings per message (1)")
    sim.add_argument("--duration", type=_positive_float, help="seconds (10)")
    sim.add_argument("--seed", type=int, default=1, help="same seed, same fleet and faults (1)")
    sim.add_argument("--bad-fraction", type=_fraction, help="share of malformed messages (0)")
    sim.add_argument("--season", choices=("SUMMER", "MONSOON", "WINTER"))
    sim.add_argument("--ground-truth", metavar="FILE", help="write injected faults (JSON lines)")
    sim.add_argument("--report", metavar="FILE", help="write the publish report as JSON")
    sim.add_argument("--qos", type=int, choices=(0, 1), default=1)
    sim.add_argument("--connections", type=_positive_int, default=4, help="MQTT connections (4)")
    sim.add_argument("--per-device", action="store_true", help="one MQTT connection per device")
    sim.add_argument("--client-id", default="twin-sim", help="MQTT client id prefix")
    sim.add_argument("--progress", action="store_true", help="print progress every second")
    sim.add_argument("--metrics-port", type=_port, help="serve published-rate metrics on this port")

    load = sub.add_parser(
        "loadtest",
        help="publish at a rate against a running engine, then report delivery and latency",
    )
    load.add_argument("--scenario", help="take devices, rate and faults' run settings from it")
    load.add_argument("--devices", type=_positive_int, help="devices (100)")
    load.add_argument("--rate", type=_positive_float, help="readings per second (1000)")
    load.add_argument("--batch", type=_positive_int, help="readings per message (1)")
    load.add_argument("--duration", type=_positive_float, help="seconds per level (10)")
    load.add_argument("--seed", type=int, default=1)
    load.add_argument("--connections", type=_positive_int, default=4, help="MQTT connections")
    load.add_argument("--settle", type=_positive_float, default=10.0, help="quiet seconds (10)")
    load.add_argument("--warmup", type=float, default=2.0, help="seconds left out of latency (2)")
    load.add_argument("--report", metavar="FILE", help="write the results as JSON")
    load.add_argument("--ramp", action="store_true", help="step the rate up until it breaks")
    load.add_argument("--ramp-start", type=_positive_float, help="first rate (--rate)")
    load.add_argument("--ramp-factor", type=_factor, default=1.5, help="rate step factor (1.5)")
    load.add_argument("--max-rate", type=_positive_float, default=100_000.0)
    load.add_argument("--max-loss-pct", type=float, default=0.1, help="loss bound (0.1 %%)")
    load.add_argument("--max-p99-ms", type=_positive_float, default=1000.0, help="p99 bound")
    load.add_argument(
        "--metrics-port", type=_port, help="serve published-rate metrics on this port"
    )

    replay = sub.add_parser("replay", help="publish a recorded CSV time series as one device")
    replay.add_argument("file", help="CSV file (SKAB ';' files or ',' with a time column)")
    replay.add_argument("--device", required=True, help="device id to publish as")
    replay.add_argument("--time-column", help="time column (datetime, timestamp, time, ts, date)")
    replay.add_argument(
        "--map", action="append", metavar="COLUMN=metric", help="rename a column (repeatable)"
    )
    replay.add_argument("--speed", type=_positive_float, default=1.0, help="pace factor (1)")
    replay.add_argument("--fast", action="store_true", help="as fast as possible")
    replay.add_argument("--rebase", action="store_true", help="first row at now, not as recorded")
    replay.add_argument("--batch", type=_positive_int, default=1, help="rows per message (1)")
    replay.add_argument("--profile", help="publish attributes with this device profile first")
    replay.add_argument("--kind", default="machine", choices=("machine", "vehicle", "generic"))
    replay.add_argument("--client-id", default="twin-replay", help="MQTT client id prefix")
    replay.add_argument(
        "--metrics-port", type=_port, help="serve published-rate metrics on this port"
    )

    ev = sub.add_parser("evaluate", help="measure the anomaly detectors on labelled data")
    evsub = ev.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    skab = evsub.add_parser("skab", help="SKAB-format files or directories (benchmark protocol)")
    skab.add_argument("paths", nargs="+", help="files or directories of SKAB CSV files")
    skab.add_argument("--rows-csv", metavar="FILE", help="file,datetime,score,verdict per row")
    skab.add_argument("--plots", metavar="DIR", help="a PNG per file: signals, score, verdicts")
    skab.add_argument("--report", metavar="FILE", help="write the scores as JSON")
    scen = evsub.add_parser("scenario", help="a simulated fleet with injected faults")
    scen.add_argument("--scenario", default="mixed-faults", help="name or TOML file")
    scen.add_argument("--devices", type=_positive_int, help="devices (the scenario's)")
    scen.add_argument("--rate", type=_positive_float, help="readings per second")
    scen.add_argument("--duration", type=_positive_float, help="seconds of device time")
    scen.add_argument("--seed", type=int, default=1)
    scen.add_argument("--report", metavar="FILE", help="write the scores as JSON")

    alerts = sub.add_parser("alerts", help="list alerts, show one, acknowledge, assign, resolve")
    asub = alerts.add_subparsers(dest="action", required=True, metavar="ACTION")
    al = asub.add_parser("list", help="alerts, newest first")
    al.add_argument("--status", choices=("open", "new", "acknowledged", "resolved"))
    al.add_argument("--device")
    al.add_argument("--severity", choices=("info", "warning", "major", "critical"),
                    help="this severity or worse")  # fmt: skip
    al.add_argument("--since", help="30m, 2h, 7d or an ISO time")
    al.add_argument("--limit", type=_positive_int, default=100)
    show = asub.add_parser("show", help="one alert with its timeline")
    show.add_argument("id")
    for action, text in (("ack", "acknowledge"), ("resolve", "resolve"), ("assign", "assign")):
        p = asub.add_parser(action, help=f"{text} an alert")
        p.add_argument("id")
        p.add_argument("--by", required=True, help="who does it")
        p.add_argument("--note", help="a note for the timeline")
        if action == "assign":
            p.add_argument("--to", required=True, help="who takes it")
    rule = asub.add_parser("rule", help="alert rules: list, show, set, enable, disable, remove")
    rusub = rule.add_subparsers(dest="rule_action", required=True, metavar="RULE_ACTION")
    rusub.add_parser("list", help="the stored rules")
    for action, text in (
        ("show", "one rule as JSON"),
        ("enable", "enable a rule"),
        ("disable", "disable a rule"),
        ("remove", "delete a rule (a shipped rule is disabled instead)"),
    ):
        rusub.add_parser(action, help=text).add_argument("id")
    rset = rusub.add_parser("set", help="add or replace rules from a JSON or TOML file")
    rset.add_argument("file", help="a file, or - for standard input")
    route = asub.add_parser("route", help="where notifications go: list, add, remove, test")
    rsub = route.add_subparsers(dest="route_action", required=True, metavar="ROUTE_ACTION")
    rsub.add_parser("list", help="routes and the outbox by status")
    radd = rsub.add_parser("add", help="add a route, or replace the one with this id")
    radd.add_argument("id")
    radd.add_argument("--channel", required=True, choices=("webhook", "slack", "email", "log"))
    radd.add_argument("--target", default="", help="URL, or smtp://host:port/to@x?from=y")
    radd.add_argument("--secret", default="", help="HMAC-SHA256 key for webhook signatures")
    radd.add_argument("--min-severity", default="warning",
                      choices=("info", "warning", "major", "critical"))  # fmt: skip
    radd.add_argument("--profile", action="append", default=[], help="only these (repeatable)")
    radd.add_argument("--group", default="", help="only devices whose attribute group is this")
    radd.add_argument("--max-per-hour", type=_non_negative_int, default=20,
                      help="deliveries per device an hour (20; 0 = no limit)")  # fmt: skip
    radd.add_argument("--remind-every", type=_duration_s, default=0,
                      help="remind while unacknowledged: 30m, 2h (0 = never)")  # fmt: skip
    radd.add_argument("--disabled", action="store_true")
    rrm = rsub.add_parser("remove", help="remove a route and cancel what it had pending")
    rrm.add_argument("id")
    rtest = rsub.add_parser("test", help="send a test notification through a route now")
    rtest.add_argument("id")

    sub.add_parser("notify", help="deliver alert notifications from the outbox until stopped")

    cat = sub.add_parser("catalog", help="maintenance reference data: parts, dealers, stock, rules")
    csub = cat.add_subparsers(dest="action", required=True, metavar="ACTION")
    cload = csub.add_parser("load", help="store the shipped parts, dealers, stock and rules")
    cload.add_argument("--replace", action="store_true", help="overwrite rows already stored")
    cshow = csub.add_parser("show", help="what the catalog holds")
    cshow.add_argument("--parts", action="store_true", help="list every part")

    svc = sub.add_parser("service", help="service history: record a service, list a device's")
    ssub = svc.add_subparsers(dest="action", required=True, metavar="ACTION")
    srec = ssub.add_parser("record", help="record a service (as a workshop would)")
    srec.add_argument("device")
    srec.add_argument("--parts", nargs="+", default=[], metavar="CODE", help="parts replaced")
    srec.add_argument("--at", help="when (ISO 8601; default now)")
    srec.add_argument("--odometer", type=_non_negative_float, help="odometer km at the service")
    srec.add_argument("--hours", type=_non_negative_float, help="operating hours at the service")
    srec.add_argument("--type", default="REGULAR", help="REGULAR, MAJOR, EMERGENCY (REGULAR)")
    srec.add_argument("--cost", type=_non_negative_float)
    srec.add_argument("--dealer")
    srec.add_argument("--notes")
    slist = ssub.add_parser("list", help="a device's services, newest first")
    slist.add_argument("device")

    report = sub.add_parser("report", help="maintenance reports")
    rsub3 = report.add_subparsers(dest="period", required=True, metavar="PERIOD")
    daily = rsub3.add_parser("daily", help="a day's report for the fleet or one device")
    daily.add_argument("--date", help="YYYY-MM-DD (default today, as of now)")
    daily.add_argument("--device", help="this device's report instead of the fleet's")

    roll = sub.add_parser("rollup", help="roll telemetry up now (--since: backfill a range)")
    roll.add_argument("--since", help="recompute from this time (ISO 8601) instead")
    roll.add_argument("--until", help="with --since: up to this time (default now)")

    rec = sub.add_parser("recommendations", help="maintenance and parts recommendations")
    rsub2 = rec.add_subparsers(dest="action", required=True, metavar="ACTION")
    rl = rsub2.add_parser("list", help="recommendations by device and rank")
    rl.add_argument("--device")
    statuses = ("open", "accepted", "rejected", "modified", "cleared", "all")
    rl.add_argument("--status", default="open", choices=statuses)
    rl.add_argument("--limit", type=_positive_int, default=100)
    rs = rsub2.add_parser("show", help="one recommendation with its reasoning")
    rs.add_argument("id", type=_positive_int)
    for action, text in (
        ("accept", "accept"),
        ("reject", "reject"),
        ("modify", "fit another part"),
    ):
        ra = rsub2.add_parser(action, help=f"{text}: feedback the next rankings learn from")
        ra.add_argument("id", type=_positive_int)
        ra.add_argument("--by", required=True, help="who decided")
        ra.add_argument("--reason")
        ra.add_argument("--cost", type=_non_negative_float, help="what the work actually cost")
        ra.add_argument("--part", help="the part fitted instead (modify)")
    rsub2.add_parser("stats", help="acceptance per part and per business rule")
    rr = rsub2.add_parser("refresh", help="rank now (the engine does this as twins change)")
    rr.add_argument("--device", action="append", help="these devices (default: all)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from flows.runtime.settings import Settings

        settings = Settings.from_env(log_level=args.log_level)
        from flows.runtime import logs

        logs.configure(settings.log_level, settings.log_format)
        return _dispatch(args, settings)
    except (TwinstreamError, OSError) as exc:
        print(f"twin: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigurationError) else 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a server refusing us at start: one line, not a traceback
        if type(exc).__module__.split(".")[0] in ("psycopg", "sqlalchemy", "redis"):
            print(
                f"twin: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}", file=sys.stderr
            )
            return 1
        raise


def _dispatch(args: argparse.Namespace, settings):  # type: ignore[no-untyped-def]
    if args.command == "run":
        from flows import engine

        if args.workers:
            settings = settings.replace(workers=args.workers)
        addresses = args.addresses.split(";") if args.addresses else None
        if (args.process_id is None) != (addresses is None):
            raise ConfigurationError("--process-id and --addresses go together")
        if addresses is not None and not 0 <= args.process_id < len(addresses):
            raise ConfigurationError(
                f"--process-id must be between 0 and {len(addresses) - 1} (one per address)"
            )
        if settings.metrics_port and settings.metrics_port + (args.process_id or 0) > 65535:
            raise ConfigurationError("TWIN_METRICS_PORT + --process-id is above 65535")
        engine.run(settings, process_id=args.process_id, addresses=addresses)
        return 0
    if args.command == "migrate":
        from storage.database import migrate

        if not settings.database_url:
            raise ConfigurationError("TWIN_DATABASE_URL is not set")
        print(f"schema at revision {migrate(settings.database_url)}")
        return 0
    if args.command == "maintain":
        from storage.maintenance import maintain

        if not settings.database_url:
            raise ConfigurationError("TWIN_DATABASE_URL is not set")
        done = maintain(
            settings.database_url,
            ahead_days=settings.partitions_ahead_days,
            retention_days=args.retention_days or settings.retention_days,
            hourly_retention_days=settings.hourly_retention_days,
            daily_retention_days=settings.daily_retention_days,
        )
        print(
            f"partitions created: {', '.join(map(str, done.created)) or 'none'}; "
            f"dropped: {', '.join(map(str, done.dropped)) or 'none'}; "
            f"old notification records deleted: {done.notifications_pruned}"
        )
        return 0
    if args.command == "demo":
        from flows.cli.demo import DemoOptions, inspect, run_demo

        options = DemoOptions(
            duration_s=args.duration,
            devices=args.devices,
            rate=args.rate,
            bad_fraction=args.bad_fraction,
            data_dir=args.data_dir,
            keep=args.keep,
            scenario=args.scenario,
        )
        return inspect(settings, options) if args.inspect else run_demo(settings, options)
    if args.command == "simulate":
        from flows.cli.simulate import run_simulate

        return run_simulate(args, settings)
    if args.command == "notify":
        from flows.engine import StopControl
        from flows.jobs import notifier
        from storage.database import migrate

        if not settings.database_url:
            raise ConfigurationError("TWIN_DATABASE_URL is not set")
        migrate(settings.database_url)
        control = StopControl()
        control.install()
        dispatcher = notifier.from_settings(settings, control.stop)
        dispatcher.start()
        dispatcher.join()
        return 0
    if args.command == "report":
        from flows.cli.maintenance import run_report

        return run_report(args, settings)
    if args.command == "rollup":
        from flows.cli.maintenance import run_rollup

        return run_rollup(args, settings)
    if args.command in ("catalog", "service", "recommendations"):
        from flows.cli import maintenance as m

        run = {"catalog": m.run_catalog, "service": m.run_service}.get(
            args.command, m.run_recommendations
        )
        return run(args, settings)
    if args.command == "alerts":
        from flows.cli.alerts import run_alerts

        return run_alerts(args, settings)
    if args.command == "evaluate":
        from flows.cli.evaluate import run_evaluate

        return run_evaluate(args, settings)
    if args.command == "replay":
        from flows.cli.simulate import run_replay

        return run_replay(args, settings)
    if args.command == "loadtest":
        from flows.cli.simulate import run_loadtest

        return run_loadtest(args, settings)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
