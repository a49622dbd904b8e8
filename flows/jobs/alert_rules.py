"""The alert rules in force: shipped defaults stored once, then reloaded while the engine runs."""

from __future__ import annotations

import logging
import threading

from flows.runtime.rounds import RoundThread
from storage.alert_store import load_rules, rules_fingerprint, sync_builtin_rules
from storage.database import connect
from twin.alerts.book import RuleBook
from twin.alerts.defaults import BUILTIN_RULES
from twin.profiles import ProfileBook

log = logging.getLogger(__name__)


def load_book(database_url: str, profiles: ProfileBook) -> tuple[RuleBook, str]:
    """Store missing shipped rules (and follow shipped changes to rules nobody edited), then
    load every rule in force."""
    with connect(database_url) as conn:
        added = sync_builtin_rules(conn, BUILTIN_RULES)
        conn.commit()
        rules, problems = load_rules(conn)
        fingerprint = rules_fingerprint(conn)
    for problem in problems:
        log.error("%s (rule ignored)", problem)
    log.info("alert rules: %d in force (%d shipped rules added or updated)", len(rules), added)
    return RuleBook(rules, profiles), fingerprint


class RuleReloader(RoundThread):
    """Polls ``alert_rules`` and swaps the rule book when it changed: edits apply within
    ``interval_s`` without a restart."""

    what = "alert rule reloads"

    def __init__(
        self,
        database_url: str,
        book: RuleBook,
        fingerprint: str,
        stop: threading.Event,
        interval_s: float = 30.0,
    ) -> None:
        super().__init__("alert-rule-reloader", database_url, stop, interval_s)
        self._book = book
        self._fingerprint = fingerprint

    def round(self) -> None:
        with self._kept.session() as conn:
            fingerprint = rules_fingerprint(conn)
            if fingerprint == self._fingerprint:
                return
            rules, problems = load_rules(conn)
        for problem in problems:
            log.error("%s (rule ignored)", problem)
        self._book.replace(rules)
        self._fingerprint = fingerprint
        log.info("alert rules reloaded: %d in force", len(rules))
