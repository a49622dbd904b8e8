"""In a cluster, acknowledge messages that another process committed.

The twin step's key exchange carries each message to the process that owns its device, so the
sink that commits it may run in another process than the source that read it. That sink writes
the message's ticket to ``ack_relay`` in the same transaction as what the message produced;
this thread, in the reading process, takes its tickets every ``poll_s`` and hands them to the
local ledger, which lets the source acknowledge them. A committed message is therefore
acknowledged at most ``poll_s`` plus a round trip later than in a single process, and costs one
small insert per sink batch and reading process; PostgreSQL unreachable only delays acks.
"""

from __future__ import annotations

import logging
import threading

from flows.connectors.ledger import CommitLedger
from flows.runtime.rounds import RoundThread
from storage import ack_relay

log = logging.getLogger(__name__)


class AckRelay(RoundThread):
    what = "the acknowledgement relay"

    def __init__(
        self, database_url: str, ledger: CommitLedger, stop: threading.Event, poll_s: float = 0.02
    ) -> None:
        super().__init__("ack-relay", database_url, stop, poll_s)
        self._ledger = ledger

    def round(self) -> None:
        with self._kept.session() as conn:
            tickets = ack_relay.take(conn, self._ledger.process)
        if tickets:
            self._ledger.committed(tickets)
