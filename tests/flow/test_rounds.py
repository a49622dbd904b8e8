"""Background rounds survive their failures: an outage pauses them, a bug in a round is logged."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from flows.runtime.rounds import RoundThread


class Scripted(RoundThread):
    """Each round raises the next scripted error, or counts a success when there is none."""

    what = "scripted work"

    def __init__(self, errors: list[Exception], poll_s: float = 3600.0) -> None:
        super().__init__("scripted", "postgresql://unused", threading.Event(), poll_s)
        self.errors: Iterator[Exception] = iter(errors)
        self.succeeded = 0
        self.finished = threading.Event()

    def round(self) -> None:
        error = next(self.errors, None)
        if error is not None:
            raise error
        self.succeeded += 1

    def finish(self) -> None:
        super().finish()
        self.finished.set()


def test_an_outage_is_logged_once_each_way(caplog: pytest.LogCaptureFixture):
    down = psycopg.OperationalError("connection refused")
    work = Scripted([down, down, down])
    with caplog.at_level(logging.INFO, logger="flows.runtime.rounds"):
        for _ in range(5):
            work.attempt()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "scripted work paused, PostgreSQL unavailable: connection refused",
        "scripted work resumed",
    ]
    assert work.succeeded == 2 and not work.failing


def test_a_failing_round_is_logged_with_its_traceback_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
):
    work = Scripted([RuntimeError("a bug"), psycopg.OperationalError("gone"), RuntimeError("b")])
    with caplog.at_level(logging.INFO, logger="flows.runtime.rounds"):
        work.attempt()
        work.attempt()
        work.attempt()  # still failing: no "resumed" while the outage lasts
        assert work.failing
        work.attempt()
    failed = [r for r in caplog.records if "round failed" in r.getMessage()]
    assert len(failed) == 2 and all(r.exc_info for r in failed)
    assert caplog.records[-1].getMessage() == "scripted work resumed"
    assert work.succeeded == 1


def test_the_thread_keeps_going_after_a_failure_and_ends_on_stop():
    work = Scripted([RuntimeError("a bug"), ValueError("another")], poll_s=0.01)
    work.start()
    deadline = time.monotonic() + 10
    while work.succeeded < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert work.succeeded >= 3 and work.is_alive()
    work._halt.set()
    work.join(5)
    assert not work.is_alive() and work.finished.is_set()
