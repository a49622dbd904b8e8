"""The command table's building blocks: value types that explain a bad value in one line, and
the :class:`Command` records the parser is built from."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


@dataclass(frozen=True)
class Arg:
    flags: tuple[str, ...]
    options: dict[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


@dataclass(frozen=True)
class Command:
    """One command of ``twin``: its arguments, and either a handler or subcommands.

    ``run`` names the handler as ``module:function`` so that building the parser imports no
    server library; the handler takes the parsed arguments and the settings and returns the
    exit code. A group's ``run`` is inherited by its subcommands that name none."""

    name: str
    help: str
    args: tuple[Arg, ...] = ()
    run: str | None = None
    sub: tuple[Command, ...] = ()
    dest: str = "action"
    """The attribute the chosen subcommand's name lands in."""


def add(subparsers: Any, command: Command) -> None:
    parser = subparsers.add_parser(command.name, help=command.help)
    for a in command.args:
        parser.add_argument(*a.flags, **a.options)
    if command.run is not None:
        parser.set_defaults(run=command.run)
    if command.sub:
        nested = parser.add_subparsers(
            dest=command.dest, required=True, metavar=command.dest.upper()
        )
        for child in command.sub:
            add(nested, child)


def _number(text: str, kind: Callable[[str], Any], what: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value: int = _number(text, int, "a whole number")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} must be at least {minimum}")
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a TCP port (1-65535)")
    return value


def positive_float(text: str) -> float:
    value: float = _number(text, float, "a number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be positive")
    return value


def non_negative_float(text: str) -> float:
    value: float = _number(text, float, "a number")
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} may not be negative")
    return value


def fraction(text: str) -> float:
    value: float = _number(text, float, "a number")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be in [0, 1)")
    return value


def factor(text: str) -> float:
    value = positive_float(text)
    if value <= 1:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 1")
    return value


def duration_s(text: str) -> int:
    """``90``, ``90s``, ``30m``, ``2h``, ``1d`` as whole seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    if not number.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: use seconds or 30m, 2h, 1d")
    return int(number) * units[unit]
