"""The ``twin`` command: the parser built from the command tables, and one line per failure."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from flows.cli.args import ArgumentParser, add
from flows.cli.commands import ROOMS
from twin.errors import ConfigurationError, TwinstreamError

if TYPE_CHECKING:
    from flows.runtime.settings import Settings

Handler = Callable[[argparse.Namespace, "Settings"], int]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="twin",
        description="twinstream: real-time telemetry and digital twins over MQTT, "
        "PostgreSQL and Redis.",
    )
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (TWIN_LOG_LEVEL)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for room in ROOMS:
        for command in room:
            add(sub, command)
    return parser


def handler(target: str) -> Handler:
    """The function a command table names as ``module:function``."""
    module, _, function = target.partition(":")
    found: Handler = getattr(importlib.import_module(module), function)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from flows.runtime import logs
    from flows.runtime.settings import Settings
    from storage.errors import SERVER_ERRORS

    try:
        settings = Settings.from_env(log_level=args.log_level)
        logs.configure(settings.log_level, settings.log_format)
        return handler(args.run)(args, settings)
    except (TwinstreamError, OSError) as exc:
        print(f"twin: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigurationError) else 1
    except KeyboardInterrupt:
        return 130
    except SERVER_ERRORS as exc:  # a server refusing us at start: one line, not a traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"twin: {type(exc).__name__}: {first}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
