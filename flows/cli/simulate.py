"""``twin simulate``: a simulated fleet, a scenario's faults and its ground truth, over MQTT."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from flows.runtime.settings import Settings
from simulators import scenario as scenarios
from simulators.metrics import PublishMetrics
from simulators.publisher import Publisher, PublisherConfig, PublishReport
from simulators.traffic import TrafficConfig
from twin.errors import ConfigurationError


def publisher_config(settings: Settings, traffic: TrafficConfig, **options: Any) -> PublisherConfig:
    """The simulator's MQTT connection, from the engine's settings."""
    endpoint = settings.mqtt
    return PublisherConfig(
        host=endpoint.host,
        port=endpoint.port,
        username=endpoint.username,
        password=endpoint.password,
        tls=endpoint.tls,
        ca_file=endpoint.ca_file,
        traffic=traffic,
        **options,
    )


def traffic_from(args: argparse.Namespace, settings: Settings) -> tuple[TrafficConfig, Any]:
    """Flags win over the scenario's [run] table, which wins over the defaults."""
    scenario = scenarios.load(args.scenario) if args.scenario else None
    run = dict(scenario.run) if scenario else {}
    for flag, key in (
        ("devices", "devices"),
        ("rate", "rate"),
        ("batch", "batch"),
        ("duration", "duration_s"),
        ("bad_fraction", "bad_fraction"),
        ("season", "season"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            run[key] = value
    traffic = TrafficConfig(seed=args.seed, prefix=settings.topic_prefix, **run)
    return traffic, scenario


def publish_metrics(args: argparse.Namespace) -> PublishMetrics | None:
    """The publisher's metrics endpoint, when ``--metrics-port`` asks for one; it lives as
    long as the run."""
    if not args.metrics_port:
        return None
    found = PublishMetrics()
    try:
        found.serve(args.metrics_port)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve metrics on port {args.metrics_port}: {exc.strerror or exc}"
        ) from None
    return found


def run_simulate(args: argparse.Namespace, settings: Settings) -> int:
    traffic, scenario = traffic_from(args, settings)
    start_ms = time.time_ns() // 1_000_000
    publisher = Publisher(
        publisher_config(
            settings,
            traffic,
            qos=args.qos,
            connections=args.connections,
            per_device=args.per_device,
            client_id=args.client_id,
        ),
        start_ms=start_ms,
        metrics=publish_metrics(args),
    )
    faults = (
        scenario.plan(publisher.fleet, traffic.seed, start_ms, traffic.duration_s)
        if scenario
        else []
    )
    if faults:
        publisher = Publisher(
            publisher.config, faults=faults, start_ms=start_ms, metrics=publisher.metrics
        )
    truth = Path(args.ground_truth) if args.ground_truth else None
    for path in (truth, Path(args.report) if args.report else None):
        if path is not None and not path.parent.is_dir():
            raise ConfigurationError(f"no directory {path.parent} for {path.name}")
    print(
        f"publishing {traffic.devices} devices at {traffic.rate:.0f} readings/s "
        f"({traffic.batch} per message) for {traffic.duration_s:.0f}s over "
        f"{publisher.report.connections} connection(s)"
        + (f"; scenario {scenario.name}: {len(faults)} faults" if scenario else ""),
        flush=True,
    )
    report = publisher.run(progress=_progress if args.progress else None)
    if truth is not None and publisher.traffic is not None:  # times as published
        scenarios.write_ground_truth(truth, publisher.traffic.faults)
    summary(report)
    if args.report:
        Path(args.report).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return 0


def _progress(report: PublishReport) -> None:
    print(
        f"  {report.seconds:5.0f}s  {report.readings} readings  "
        f"{report.achieved_rate:7.0f}/s  lag {report.max_lag_s:.2f}s",
        flush=True,
    )


def summary(report: PublishReport) -> None:
    print(
        f"published {report.readings} readings in {report.messages} messages "
        f"({report.bad_messages} malformed, {report.events} events) in {report.seconds:.1f}s: "
        f"{report.achieved_rate:.0f} readings/s of {report.requested_rate:.0f} requested",
        flush=True,
    )
    if not report.kept_up:
        print(
            f"publisher ceiling reached: it fell {report.max_lag_s:.1f}s behind schedule; "
            "the achieved rate above is what this publisher can do, not the engine's limit",
            file=sys.stderr,
        )
    if report.unacknowledged_connections:
        print(
            f"{report.unacknowledged_connections} connection(s) still had unacknowledged "
            "messages when the publisher gave up waiting",
            file=sys.stderr,
        )


def run_loadtest(args: argparse.Namespace, settings: Settings) -> int:
    from simulators.loadtest import HEADER, Bounds, LoadTest, row

    settings.require_services()
    assert settings.database_url is not None
    traffic, _ = traffic_from(args, settings)
    test = LoadTest(
        publisher=publisher_config(settings, traffic, connections=args.connections),
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        redis_prefix=settings.redis_prefix,
        settle_s=args.settle,
        warmup_s=args.warmup,
        metrics=publish_metrics(args),
    )
    out: dict[str, Any] = {"devices": traffic.devices, "batch": traffic.batch}
    if args.ramp:
        bounds = Bounds(max_loss_pct=args.max_loss_pct, max_p99_ms=args.max_p99_ms)
        print(HEADER)
        levels, best, why = test.ramp(
            args.ramp_start or traffic.rate, args.ramp_factor, args.max_rate, bounds
        )
        print(f"highest sustained rate: {best:.0f} readings/s (stopped: {why})")
        out.update(
            levels=[lv.to_dict() for lv in levels],
            sustained_rate=best,
            stopped_because=why,
            bounds={"max_loss_pct": bounds.max_loss_pct, "max_p99_ms": bounds.max_p99_ms},
        )
    else:
        print(
            f"load test: {traffic.devices} devices at {traffic.rate:.0f} readings/s "
            f"({traffic.batch} per message) for {traffic.duration_s:.0f}s",
            flush=True,
        )
        result = test.level()
        print(HEADER)
        print(row(result))
        out.update(result.to_dict())
    if args.report:
        Path(args.report).write_text(json.dumps(out, indent=2) + "\n")
    return 0


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    from simulators.replay import ReplayTraffic, read_series

    mapping: dict[str, str] = {}
    for item in args.map or []:
        column, sep, metric = item.partition("=")
        if not sep or not column or not metric:
            raise ConfigurationError(f"--map {item!r}: expected COLUMN=metric")
        mapping[column] = metric
    series = read_series(Path(args.file), time_column=args.time_column, mapping=mapping)
    attributes = {"kind": args.kind, "profile": args.profile} if args.profile else None
    source = ReplayTraffic(
        series,
        args.device,
        prefix=settings.topic_prefix,
        speed=0.0 if args.fast else args.speed,
        rebase=args.rebase,
        batch=args.batch,
        attributes=attributes,
    )
    publisher = Publisher(
        publisher_config(settings, TrafficConfig(), connections=1, client_id=args.client_id),
        source=source,
        metrics=publish_metrics(args),
    )
    first, last = series.rows[0][0], series.rows[-1][0]
    pace = "as fast as possible" if args.fast else f"at {args.speed:g}x recorded speed"
    print(
        f"replaying {len(series.rows)} rows of {args.file} as {args.device} {pace} "
        f"({(last - first) / 1000:.0f}s recorded; metrics: {', '.join(series.metrics.values())})",
        flush=True,
    )
    report = publisher.run()
    print(
        f"published {report.readings} readings in {report.messages} messages in "
        f"{report.seconds:.1f}s"
        + (
            f"; {series.skipped_cells} empty or non-numeric cells left out"
            if series.skipped_cells
            else ""
        ),
        flush=True,
    )
    return 0
