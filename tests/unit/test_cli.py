"""The ``twin`` command tables: every command reaches a handler, bad values and unreachable
servers give one line."""

from __future__ import annotations

import argparse

import psycopg
import pytest
import redis

from flows.cli import main as cli
from flows.cli.args import Command
from flows.cli.commands import ROOMS
from storage.errors import SERVER_ERRORS


def _leaves(command: Command, inherited: str | None = None) -> list[tuple[str, str | None]]:
    run = command.run or inherited
    if not command.sub:
        return [(command.name, run)]
    return [leaf for child in command.sub for leaf in _leaves(child, run)]


ALL = [c for room in ROOMS for c in room]


@pytest.mark.parametrize("command", ALL, ids=[c.name for c in ALL])
def test_every_command_reaches_a_handler(command: Command) -> None:
    for name, target in _leaves(command):
        assert target is not None, f"{command.name} {name} has no handler"
        assert callable(cli.handler(target)), target


def test_command_names_are_unique() -> None:
    names = [c.name for c in ALL]
    assert len(names) == len(set(names))


def test_the_parser_routes_a_subcommand_to_its_groups_handler() -> None:
    args = cli.build_parser().parse_args(["alerts", "route", "add", "r1", "--channel", "log"])
    assert args.run == "flows.cli.alerts:run_alerts"
    assert (args.action, args.route_action, args.max_per_hour) == ("route", "add", 20)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["alerts", "route", "add", "r", "--channel", "log", "--max-per-hour", "-1"],
         "-1 must be at least 0"),
        (["alerts", "route", "add", "r", "--channel", "log", "--remind-every", "2x"],
         "use seconds or 30m"),
        (["simulate", "--metrics-port", "70000"], "is not a TCP port"),
        (["loadtest", "--ramp-factor", "1"], "must be greater than 1"),
        (["demo", "--bad-fraction", "1.5"], "must be in [0, 1)"),
    ],
)  # fmt: skip
def test_a_bad_value_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_an_unreachable_database_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")
    assert cli.main(["migrate"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("twin: OperationalError") and len(err.splitlines()) == 1


def test_only_the_servers_errors_are_turned_into_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug is a traceback, even when it comes from a module named like a store client."""
    assert issubclass(psycopg.OperationalError, SERVER_ERRORS)
    assert issubclass(redis.ConnectionError, SERVER_ERRORS)

    class Bug(Exception):
        __module__ = "redis.looks_like_a_server_error"

    def broken(args: argparse.Namespace, settings: object) -> int:
        raise Bug("a defect")

    monkeypatch.setattr(cli, "handler", lambda target: broken)
    with pytest.raises(Bug):
        cli.main(["migrate"])
