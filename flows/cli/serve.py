"""The engine's commands: run it, migrate its schema, maintain partitions, deliver notifications."""

from __future__ import annotations

import argparse

from flows.runtime.settings import Settings
from twin.errors import ConfigurationError


def _database_url(settings: Settings) -> str:
    if not settings.database_url:
        raise ConfigurationError("TWIN_DATABASE_URL is not set")
    return settings.database_url


def _cluster(args: argparse.Namespace, settings: Settings) -> list[str] | None:
    addresses = args.addresses.split(";") if args.addresses else None
    if (args.process_id is None) != (addresses is None):
        raise ConfigurationError("--process-id and --addresses go together")
    if addresses is not None and not 0 <= args.process_id < len(addresses):
        raise ConfigurationError(
            f"--process-id must be between 0 and {len(addresses) - 1} (one per address)"
        )
    if settings.metrics_port and settings.metrics_port + (args.process_id or 0) > 65535:
        raise ConfigurationError("TWIN_METRICS_PORT + --process-id is above 65535")
    return addresses


def run(args: argparse.Namespace, settings: Settings) -> int:
    from flows import engine

    if args.workers:
        settings = settings.replace(workers=args.workers)
    addresses = _cluster(args, settings)
    engine.run(settings, process_id=args.process_id, addresses=addresses)
    return 0


def migrate(args: argparse.Namespace, settings: Settings) -> int:
    from storage.database import migrate

    print(f"schema at revision {migrate(_database_url(settings))}")
    return 0


def maintain(args: argparse.Namespace, settings: Settings) -> int:
    from storage.maintenance import maintain

    done = maintain(
        _database_url(settings),
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


def notify(args: argparse.Namespace, settings: Settings) -> int:
    from flows.engine import StopControl
    from flows.jobs import notifier
    from storage.database import migrate

    migrate(_database_url(settings))
    control = StopControl()
    control.install()
    dispatcher = notifier.from_settings(settings, control.stop)
    dispatcher.start()
    dispatcher.join()
    return 0
