"""Start the engine: migrate, load profiles and snapshots, run the dataflow until stopped.

Stopping: the first SIGTERM or SIGINT ends the MQTT source cleanly (disconnect, drain the
buffer, flush the sinks, write a final snapshot of every twin) and the process exits 0. A
second signal abandons retries against an unreachable store. Bytewax delivers Python signal
handlers while it runs, so this works with any number of workers.
"""

from __future__ import annotations

import logging
import secrets
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from types import FrameType

import msgspec
from bytewax.run import cli_main

from flows.connectors.ledger import CommitLedger
from flows.connectors.mqtt_source import MqttSource
from flows.connectors.redis_sink import RedisSink
from flows.connectors.sinks import PgSink
from flows.dataflow import SHARDS_PER_WORKER, WakeSource, build_flow
from flows.jobs.alert_rules import RuleReloader, load_book
from flows.runtime import collector, logs, metrics
from flows.runtime.settings import Settings
from storage import registry, sessions
from storage.catalog import (
    load_catch_up,
    load_profiles,
    load_snapshots_in_parts,
    recently_seen,
    sync_builtin_profiles,
)
from storage.database import connect, migrate
from twin.alerts.book import RuleBook
from twin.alerts.lifecycle import AlertEngine
from twin.anomaly.bank import Columns, DetectorBank, TwinHeld
from twin.anomaly.config import FLEET
from twin.anomaly.detectors import AnomalyDetectors
from twin.errors import ConfigurationError
from twin.parsing import ParseLimits, Parser
from twin.processor import TwinProcessor, TwinSettings
from twin.profiles import BUILTIN_PROFILES, ProfileBook
from twin.records import CatchUp
from twin.topics import TopicRouter

log = logging.getLogger(__name__)


@dataclass
class StopControl:
    """Events the engine watches: ``stop`` ends the flow, ``abandon`` gives up on retries."""

    stop: threading.Event = field(default_factory=threading.Event)
    abandon: threading.Event = field(default_factory=threading.Event)
    signals: int = 0

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals == 1:
            log.info(
                "%s: stopping (draining the source, flushing the sinks)",
                signal.Signals(signum).name,
            )
            self.stop.set()
        else:
            log.warning("second stop signal: abandoning retries")
            self.abandon.set()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self.handle)
        signal.signal(signal.SIGINT, self.handle)

    def uninstall(self) -> None:
        """Ignore further stop signals once the flow has ended.

        Python restores the default handlers while the interpreter shuts down, so a signal
        arriving then (an orchestrator or a cluster peer repeating its stop) would kill an engine
        that had already flushed everything and make a clean stop look like a crash.
        """
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def prepare(settings: Settings) -> tuple[ProfileBook, dict[str, bytes]]:
    """Migrate, store the shipped profiles, and load profiles and twin snapshots."""
    assert settings.database_url
    revision = migrate(settings.database_url)
    log.info("database schema at revision %s", revision)
    with connect(settings.database_url) as conn:
        sync_builtin_profiles(conn, BUILTIN_PROFILES)
        conn.commit()
        profiles = load_profiles(conn)
    warm = load_snapshots_in_parts(settings.database_url)
    log.info("loaded %d device profiles and %d twin snapshots", len(profiles), len(warm))
    found = detectors(settings)
    if found is not None:
        config = found.config
        registry.register(
            settings.database_url, config.version, config.name, msgspec.to_builtins(config)
        )
        log.info("anomaly detectors %s (%s)", config.version, settings.detectors)
    return ProfileBook(profiles), warm


def detectors(settings: Settings) -> DetectorBank | None:
    """``on``: the vectorised layers, state in each shard's columns; ``scalar``: the
    reference layers, one reading at a time, state in each twin."""
    if settings.detectors == "off":
        return None
    config = msgspec.structs.replace(FLEET, warmup_readings=settings.detector_warmup)
    if settings.detectors == "scalar":
        return TwinHeld(AnomalyDetectors(config))
    return Columns(config)


DEFAULT_GROUP = "twinstream"


def subscription_group(settings: Settings, processes: int) -> str:
    """The shared-subscription group, or "" for one plain subscription.

    A process that reads alone subscribes plainly: Mosquitto restores a plain subscription
    from its persistence file at once when it restarts, but routes nothing to a shared one
    until the subscriber subscribes again, and whatever is published in between is dropped.
    """
    if settings.mqtt_group is not None:
        if processes > 1 and not settings.mqtt_group:
            raise ConfigurationError(
                "TWIN_MQTT_GROUP is empty but the engine runs as a cluster: every process "
                "would take every message; set a group name (or leave it unset)"
            )
        return settings.mqtt_group
    return DEFAULT_GROUP if processes > 1 else ""


def mqtt_sessions(
    settings: Settings, process_id: int, processes: int
) -> tuple[list[str], Callable[[str], None]]:
    """Record this process's session; process 0 also finds the sessions to drain.

    A persistent session keeps what the broker queued for it until it expires, so a change of
    client id (or a smaller cluster) would strand readings in the old one. Every session the
    engine uses is recorded per broker; at start, one no longer in use and not expired is
    drained, and so is every client id in ``TWIN_MQTT_DRAIN`` (sessions from elsewhere).
    """
    assert settings.database_url
    endpoint = settings.mqtt
    broker = f"{endpoint.host}:{endpoint.port}"
    mine = f"{settings.mqtt_client_id}-{process_id}"
    in_use = [f"{settings.mqtt_client_id}-{p}" for p in range(processes)]
    now = datetime.now(UTC)
    found: list[str] = []
    with connect(settings.database_url) as conn:
        if process_id == 0:
            for client, last_used in sessions.orphans(conn, broker, in_use, now):
                log.warning(
                    "MQTT session %s on %s was last used %s and has not expired: it may hold "
                    "readings queued for it; draining it now",
                    client, broker, last_used.isoformat(timespec="seconds"),
                )  # fmt: skip
                found.append(client)
            named = [c.strip() for c in settings.mqtt_drain.split(",") if c.strip()]
            found += [c for c in named if c not in found and c not in in_use]
        sessions.record(conn, broker, [mine, *found], settings.mqtt_session_expiry_s, now)
        conn.commit()

    def drained(client_id: str) -> None:
        try:
            with connect(settings.database_url or "") as conn:
                sessions.drained(conn, broker, client_id, datetime.now(UTC))
                conn.commit()
        except Exception as exc:  # the next start drains it again: harmless
            log.warning("could not record that session %s is drained: %s", client_id, exc)

    return found, drained


def build(  # type: ignore[no-untyped-def]
    settings: Settings,
    control: StopControl,
    profiles: ProfileBook,
    warm: dict[str, bytes],
    *,
    process_id: int = 0,
    processes: int = 1,
):
    """The dataflow for ``settings`` (split out so the demo and tests can run it)."""
    assert settings.database_url and settings.redis_url
    book, fingerprint = load_book(settings.database_url, profiles)
    RuleReloader(
        settings.database_url, book, fingerprint, control.stop, settings.alert_rules_reload_s
    ).start()
    processor = _processor(settings, profiles, warm, book)
    parser = Parser(
        ParseLimits(
            max_payload_bytes=settings.max_payload_bytes,
            max_future_skew_ms=settings.max_future_skew_s * 1000,
            retention_days=settings.retention_days,
        ),
        prefix=settings.topic_prefix,
    )
    ledger = CommitLedger(process=process_id, run=secrets.randbits(16))
    source = _source(settings, control, ledger, process_id, processes)
    pg = PgSink(
        settings.database_url,
        ledger=ledger,
        topic_prefix=settings.topic_prefix,
        abandon=control.abandon,
        **settings.keeping(),
    )
    live = RedisSink(settings.redis_url, prefix=settings.redis_prefix, ttl_s=settings.twin_ttl_s)
    metrics.SOURCE_BUFFERED.set_function(lambda: source.buffered)
    metrics.PRESENCE.window_ms = settings.twin_ttl_s * 1000
    wake = _wake(settings, warm)
    shards = SHARDS_PER_WORKER * settings.workers * processes
    flow = build_flow(
        source, processor, parser, pg, live, wake=wake, draining=source.draining, shards=shards
    )
    return flow, source


def _processor(
    settings: Settings, profiles: ProfileBook, warm: dict[str, bytes], book: RuleBook
) -> TwinProcessor:
    """The twin step, with what restored twins must catch up on after a crash."""
    catch_up: dict[str, CatchUp] = {}
    if warm:
        with connect(settings.database_url or "") as conn:
            catch_up = load_catch_up(conn, settings.snapshot_interval_s)
        behind = sum(len(c.readings) for c in catch_up.values())
        if behind:
            log.info(
                "catching up %d twins on %d readings stored after their snapshots "
                "(the engine stopped without its final snapshots)",
                sum(1 for c in catch_up.values() if c.readings),
                behind,
            )
    return TwinProcessor(
        profiles,
        TwinSettings(
            snapshot_interval_ms=int(settings.snapshot_interval_s * 1000),
            silence_ms=settings.twin_ttl_s * 1000,
            topic_prefix=settings.topic_prefix,
        ),
        warm,
        detectors(settings),
        AlertEngine(book),
        catch_up,
    )


def _source(
    settings: Settings, control: StopControl, ledger: CommitLedger, process_id: int, processes: int
) -> MqttSource:
    orphans, drained = mqtt_sessions(settings, process_id, processes)
    return MqttSource(
        settings.mqtt,
        stop=control.stop,
        abandon=control.abandon,
        ledger=ledger,
        prefix=settings.topic_prefix,
        group=subscription_group(settings, processes),
        client_id=f"{settings.mqtt_client_id}-{process_id}",
        orphans=orphans,
        on_drained=drained,
        reads_attributes=process_id == 0,
        workers_per_process=settings.workers,
        batch_size=settings.batch_size,
        linger_ms=settings.linger_ms,
        session_expiry_s=settings.mqtt_session_expiry_s,
        on_batch=metrics.source_batch,
        on_state=metrics.mqtt_state,
    )


def _wake(settings: Settings, warm: dict[str, bytes]) -> WakeSource | None:
    """Twins seen recently, restored at start so their silence timers run."""
    if settings.wake_horizon_h <= 0 or not warm:
        return None
    since = datetime.now(UTC) - timedelta(hours=settings.wake_horizon_h)
    with connect(settings.database_url or "") as conn:
        woken = [d for d in recently_seen(conn, since) if d in warm]
    log.info("restoring %d twins seen in the last %g h to watch them", len(woken),
             settings.wake_horizon_h)  # fmt: skip
    return WakeSource(woken)


def metrics_port(base: int, process_id: int | None) -> int:
    """Each process of a cluster serves its own metrics, process ``i`` on ``base + i``: the
    counters are per process and Prometheus adds them up (``sum without (instance)``)."""
    return base + (process_id or 0)


def run(
    settings: Settings,
    *,
    control: StopControl | None = None,
    install_signals: bool = True,
    process_id: int | None = None,
    addresses: list[str] | None = None,
) -> None:
    """Run the engine until stopped."""
    settings.require_services()
    control = control or StopControl()
    if install_signals:
        control.install()
    processes = len(addresses) if addresses else 1
    group = subscription_group(settings, processes)  # a setting that cannot work fails first
    profiles, warm = prepare(settings)
    flow, source = build(
        settings, control, profiles, warm, process_id=process_id or 0, processes=processes
    )
    log.info("MQTT: %s", f"shared subscription, group {group!r}" if group else
             "one plain subscription")  # fmt: skip
    _start_jobs(settings, profiles, control)
    if settings.metrics_port:
        _serve_health(settings, source, process_id)
    api = None
    if settings.api == "on" and not process_id:  # process 0 of a cluster serves the API
        from api.server import ApiProcess

        setup = partial(logs.configure, settings.log_level, settings.log_format)
        api = ApiProcess(settings.api_config(), settings.api_host, settings.api_port, setup).start()
    relay_stop = threading.Event()
    if processes > 1:  # messages committed by another process are acknowledged through here
        _start_relay(settings, source, process_id or 0, relay_stop)
    log.info(
        "engine running: %d worker(s), topics %s",
        settings.workers,
        TopicRouter(settings.topic_prefix).subscription(),
    )
    collector.off_the_hot_path()
    cli_main(
        flow,
        workers_per_process=settings.workers,
        process_id=process_id,
        addresses=addresses,
        epoch_interval=timedelta(seconds=settings.epoch_interval_s),
    )
    relay_stop.set()
    if api is not None:
        api.stop()
    if install_signals:
        control.uninstall()
    log.info("engine stopped")


def _start_jobs(settings: Settings, profiles: ProfileBook, control: StopControl) -> None:
    """The work beside the dataflow this engine does (each can be switched off)."""
    if settings.notify == "on":
        from flows.jobs import notifier

        notifier.from_settings(settings, control.stop).start()
    if settings.rollups == "on":
        from flows.jobs.rollups import Rollups

        Rollups(
            settings.database_url or "", control.stop, window_minutes=settings.window_minutes
        ).start()
    if settings.recommend == "on":
        from flows.jobs import recommender

        recommender.from_settings(settings, profiles, control.stop).start()


def _serve_health(settings: Settings, source: MqttSource, process_id: int | None) -> None:
    from flows.runtime import health
    from storage import probes

    readiness = health.Readiness(
        {
            "postgres": probes.postgres_probe(settings.database_url or ""),
            "redis": probes.redis_probe(settings.redis_url or ""),
        },
        mqtt_state=lambda: source.state,
        last_poll=lambda: source.polled,
    )
    port = metrics_port(settings.metrics_port, process_id)
    health.serve(port, readiness)
    log.info("metrics on :%d/metrics, health on /healthz and /readyz", port)


def _start_relay(
    settings: Settings, source: MqttSource, process_id: int, stop: threading.Event
) -> None:
    from flows.connectors.ack_relay import AckRelay
    from storage import ack_relay

    with connect(settings.database_url or "") as conn:
        ack_relay.clear(conn, process_id)
    AckRelay(settings.database_url or "", source.ledger, stop).start()
