"""Acknowledge after commit: which MQTT messages are stored, and may be acknowledged.

The workers of one engine process are threads, so they share one :class:`CommitLedger`. A
source partition takes a ticket for every message it reads (:meth:`AckWindow.take`); the
ticket rides through the dataflow on the message's records (``RawMessage``, ``DeviceInbox``,
``TwinOutput``, deviceless ``DeadLetter``) to whichever worker's PostgreSQL sink writes them,
and that sink reports it (:meth:`CommitLedger.committed`) once the transaction holding
everything the message produced has committed. The source partition then sends the PUBACKs,
in the order the messages arrived (MQTT 5, 4.6), for the unbroken run of committed messages at
the head of its window.

A ticket names the source partition that read the message and orders its messages (see
:class:`CommitLedger` for its bits, and for clusters of processes). ``committed`` only appends
to a list that its partition swaps out, so sinks and sources never wait for each other.

Redelivery inside one process is absorbed here: after a reconnect that resumes the session the
broker sends again every message not yet acknowledged, with the same packet identifier and DUP
set, and a redelivery whose identifier is still in the window is the same message, already in
the dataflow; it is not taken twice. A message without DUP is always new (MQTT 5, 3.3.1.1),
even under an identifier still in the window: Mosquitto 2.0.11 sends past the receive maximum
when far behind, so its identifiers wrap around while the first holders wait for their commit;
each holder is acknowledged in its turn, one PUBACK each (that broker delivers the wrapped ones
again on the next connection all the same: duplicates, which the store absorbs).

Committed messages are acknowledged only while connected, so a message committed while the
connection is down stays in the window and its redelivery is recognised the same way. A
redelivery (DUP) under an identifier acknowledged just before the connection dropped is the same
message only if topic and payload are the same (our PUBACK was lost on the way): it is
acknowledged again, not taken; otherwise the broker had our PUBACK and reused the identifier for
a message we never read, and it is taken. When the broker answers without the session (it lost
it), the messages in the window can no longer be acknowledged; they are still stored, and their
acknowledgements are dropped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from twin.records import NO_TICKET

SLOT_BITS = 6
PROCESS_BITS = 6
RUN_BITS = 16
SEQ_SHIFT = SLOT_BITS + PROCESS_BITS + RUN_BITS
MAX_SLOTS = 1 << SLOT_BITS
MAX_PROCESSES = 1 << PROCESS_BITS
_SLOT_MASK = MAX_SLOTS - 1
_HOME_MASK = (1 << (PROCESS_BITS + RUN_BITS)) - 1
_NO_ACK = -1


class CommitLedger:
    """Committed tickets, per source partition, from any sink thread.

    A ticket is ``seq << SEQ_SHIFT | run << 12 | process << 6 | slot``. In a cluster the twin
    step's key exchange carries a message to whichever process owns its device, so the sink
    that commits it may be in another process than the source that read it: such tickets are
    ``foreign`` and travel back through PostgreSQL, in the transaction that commits them
    (``ack_relay``; see :class:`flows.connectors.ack_relay.AckRelay`). ``run`` tells this
    process's tickets from those of its previous life, so a relayed ticket from before a
    restart acknowledges nothing.
    """

    def __init__(self, process: int = 0, run: int = 0) -> None:
        if not 0 <= process < MAX_PROCESSES:
            raise ValueError(f"at most {MAX_PROCESSES} processes")
        self.process = process
        self.run = run & ((1 << RUN_BITS) - 1)
        self._home = self.run << PROCESS_BITS | process
        self._done: list[deque[int]] = [deque() for _ in range(MAX_SLOTS)]
        self._slots = 0

    def origin(self) -> int:
        """The low bits of the tickets of a new source partition (one per connection)."""
        slot = self._slots
        if slot >= MAX_SLOTS:
            raise RuntimeError(f"at most {MAX_SLOTS} MQTT source partitions per process")
        self._slots += 1
        return self._home << SLOT_BITS | slot

    def split(self, tickets: Iterable[int]) -> tuple[list[int], dict[int, list[int]]]:
        """This process's tickets, and the others' by process (to relay)."""
        home = self._home
        mine: list[int] = []
        foreign: dict[int, list[int]] = {}
        for ticket in tickets:
            if ticket < 0:
                continue
            if (ticket >> SLOT_BITS) & _HOME_MASK == home:
                mine.append(ticket)
            else:
                foreign.setdefault((ticket >> SLOT_BITS) & (MAX_PROCESSES - 1), []).append(ticket)
        return mine, foreign

    def committed(self, tickets: Iterable[int]) -> None:
        """Everything these messages produced is committed in PostgreSQL (this process's
        tickets; any other is ignored: a relayed ticket of an earlier run)."""
        done, home = self._done, self._home
        for ticket in tickets:
            if ticket >= 0 and (ticket >> SLOT_BITS) & _HOME_MASK == home:
                done[ticket & _SLOT_MASK].append(ticket >> SEQ_SHIFT)

    def collect(self, slot: int) -> list[int]:
        """The sequence numbers committed for ``slot`` since the last call. Taken one by one
        (``deque`` appends and pops are atomic), so a sink thread appending meanwhile is never
        lost: what it adds after this call is in the next one."""
        done = self._done[slot]
        out: list[int] = []
        while done:
            out.append(done.popleft())
        return out


class AckWindow:
    """One connection's messages from arrival to acknowledgement, in arrival order."""

    def __init__(self, ledger: CommitLedger) -> None:
        self._ledger = ledger
        self._origin = ledger.origin()
        self._slot = self._origin & _SLOT_MASK
        self._next = 0
        self._pending: deque[tuple[int, int]] = deque()  # (seq, packet id or _NO_ACK)
        self._inflight: dict[int, int] = {}  # packet id -> messages in the window under it
        self._digests: dict[int, int] = {}  # seq -> digest of topic and payload
        self._acked: dict[int, int] = {}  # packet id -> digest, acknowledged, not reused since
        self._done: set[int] = set()
        self.redelivered = 0
        """Redeliveries of messages still in the window, not taken again."""
        self.wrapped = 0
        """New messages under an identifier still in the window (the broker past the receive
        maximum)."""

    def __len__(self) -> int:
        return len(self._pending)

    def take(self, packet_id: int | None, dup: bool = False, digest: int = 0) -> int | None:
        """A ticket for a new message, or None for a redelivery of one already taken.

        ``digest``: a hash of the message's topic and payload, to recognise a redelivery of a
        message whose acknowledgement the broker may not have received.
        """
        if packet_id is None:  # QoS 0: nothing to acknowledge
            return NO_TICKET
        if packet_id in self._inflight:
            if dup:  # the same message, still in the flow
                self.redelivered += 1
                return None
            self.wrapped += 1  # a new message: the broker is past the receive maximum
        acked = self._acked.pop(packet_id, None)
        if dup and acked is not None and acked == digest:
            self.redelivered += 1
            self._done.add(self._push(packet_id, digest))  # acknowledge it again, in its turn
            return None
        return self._push(packet_id, digest) << SEQ_SHIFT | self._origin

    def _push(self, packet_id: int, digest: int = 0) -> int:
        seq = self._next
        self._next = seq + 1
        self._pending.append((seq, packet_id))
        inflight = self._inflight
        inflight[packet_id] = inflight.get(packet_id, 0) + 1
        if digest:
            self._digests[seq] = digest
        return seq

    def take_done(self, packet_id: int | None) -> None:
        """A message that produced nothing to store (skipped): acknowledged in its turn."""
        ticket = self.take(packet_id)
        if ticket is not None and ticket >= 0:
            self._done.add(ticket >> SEQ_SHIFT)

    def session_lost(self) -> int:
        """The broker has no session for us: nothing in the window can be acknowledged now.

        The messages are still stored when they commit; returns how many were in the window.
        """
        lost = 0
        pending: deque[tuple[int, int]] = deque()
        for seq, packet_id in self._pending:
            pending.append((seq, _NO_ACK))
            lost += packet_id != _NO_ACK
        self._pending = pending
        self._inflight.clear()
        self._acked.clear()
        return lost

    def acks(self) -> list[int]:
        """Packet identifiers to acknowledge now: the committed run at the head, in order.

        Call it only while connected: what it returns is out of the window.
        """
        done = self._done
        done.update(self._ledger.collect(self._slot))
        pending = self._pending
        out: list[int] = []
        if not done:
            return out
        inflight, digests, acked = self._inflight, self._digests, self._acked
        while pending:
            seq, packet_id = pending[0]
            if seq not in done:
                break
            pending.popleft()
            done.discard(seq)
            digest = digests.pop(seq, 0)
            if packet_id != _NO_ACK:
                held = inflight[packet_id]
                if held == 1:
                    del inflight[packet_id]
                else:
                    inflight[packet_id] = held - 1
                out.append(packet_id)
                if digest:
                    acked[packet_id] = digest
        return out

    @property
    def unacknowledged(self) -> int:
        return len(self._pending)
