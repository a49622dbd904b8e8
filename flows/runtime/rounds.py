"""Work the engine does in rounds beside the dataflow: rollups, recommendations, notifications,
alert rule reloads.

Each is a thread that runs a round every ``poll_s`` until the engine's stop event is set. An
unavailable PostgreSQL pauses it (one warning, and one line when it answers again) instead of
ending it, and a round that fails for any other reason is logged with its traceback and tried
again next time: a background job must not die silently while ingest runs on.
"""

from __future__ import annotations

import logging
import threading

import psycopg

from storage.database import KeptConnection

log = logging.getLogger(__name__)


class RoundThread(threading.Thread):
    """Calls :meth:`round` every ``poll_s`` with one PostgreSQL connection kept between rounds."""

    what = "background work"
    """How the log lines name this work."""

    def __init__(self, name: str, database_url: str, stop: threading.Event, poll_s: float):
        super().__init__(name=name, daemon=True)
        self._kept = KeptConnection(database_url)
        self._halt = stop
        self._poll = poll_s
        self.failing = False
        """PostgreSQL did not answer the last round."""

    def round(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        while not self._halt.wait(self._poll):
            self.attempt()
        self.finish()

    def attempt(self) -> None:
        """One round, its failures logged and kept out of the loop."""
        try:
            self.round()
        except psycopg.Error as exc:
            if not self.failing:
                log.warning("%s paused, PostgreSQL unavailable: %s", self.what, exc)
            self.failing = True
            return
        except Exception:
            log.exception("%s: round failed (tried again in %g s)", self.what, self._poll)
            return
        if self.failing:
            log.info("%s resumed", self.what)
        self.failing = False

    def finish(self) -> None:
        """After the last round: let the kept connection go."""
        self._kept.close()
