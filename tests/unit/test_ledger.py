"""Acknowledge after commit: in arrival order, once, and never for a session the broker lost."""

from __future__ import annotations

import sys
import threading

from flows.connectors.ledger import AckWindow, CommitLedger
from twin.records import NO_TICKET


def test_acknowledgements_wait_for_commit_and_keep_arrival_order():
    ledger = CommitLedger()
    window = AckWindow(ledger)
    t = [window.take(pid) for pid in (10, 11, 12, 13)]
    assert window.acks() == []  # nothing committed yet
    ledger.committed([t[1], t[3]])
    assert window.acks() == []  # 10 is still in the flow: 11 and 13 wait behind it
    ledger.committed([t[0]])
    assert window.acks() == [10, 11]
    ledger.committed([t[2]])
    assert window.acks() == [12, 13]
    assert len(window) == 0


def test_a_redelivery_of_a_message_in_the_flow_is_not_taken_twice():
    ledger = CommitLedger()
    window = AckWindow(ledger)
    first = window.take(7)
    assert window.take(7, dup=True) is None and window.redelivered == 1
    ledger.committed([first])
    assert window.acks() == [7]  # one acknowledgement covers both deliveries
    again = window.take(7)  # the broker may reuse the identifier for a new message
    assert again is not None and again != first


def test_an_identifier_still_in_the_window_without_dup_is_a_new_message():
    """A broker far ahead of its receive maximum wraps its identifiers around: each message
    under the identifier is taken, and acknowledged in its turn."""
    ledger = CommitLedger()
    window = AckWindow(ledger)
    first, second = window.take(9), window.take(9)
    assert first is not None and second is not None and first != second
    assert window.redelivered == 0 and len(window) == 2
    assert window.take(9, dup=True) is None  # a redelivery of one of them: not taken again
    ledger.committed([second])
    assert window.acks() == []  # the first holder is still in the flow
    ledger.committed([first])
    assert window.acks() == [9, 9]
    assert len(window) == 0
    assert window.take(9) is not None  # and the identifier is free again


def test_an_acknowledged_identifier_sent_again_is_a_message_to_take():
    """Once the broker has our PUBACK it may reuse the identifier; a message under it that we
    never read (lost with the connection) comes again with DUP set and must not be dropped."""
    ledger = CommitLedger()
    window = AckWindow(ledger)
    ledger.committed([window.take(3)])
    assert window.acks() == [3]
    again = window.take(3)
    assert again is not None
    ledger.committed([again])
    assert window.acks() == [3]


def test_skipped_messages_are_acknowledged_in_their_turn():
    ledger = CommitLedger()
    window = AckWindow(ledger)
    first = window.take(1)
    window.take_done(2)
    assert window.acks() == []
    ledger.committed([first])
    assert window.acks() == [1, 2]


def test_a_lost_session_drops_acknowledgements_but_not_the_messages():
    ledger = CommitLedger()
    window = AckWindow(ledger)
    old = [window.take(pid) for pid in (1, 2)]
    assert window.session_lost() == 2
    new = window.take(1)  # a new session reuses identifiers from 1
    assert new is not None
    ledger.committed([*old, new])
    assert window.acks() == [1]  # only the new session's message
    assert len(window) == 0


def test_qos0_needs_no_ticket_and_partitions_keep_their_own_tickets():
    ledger = CommitLedger()
    a, b = AckWindow(ledger), AckWindow(ledger)
    assert a.take(None) == NO_TICKET
    ta, tb = a.take(5), b.take(5)
    ledger.committed([tb, NO_TICKET])
    assert a.acks() == [] and b.acks() == [5]
    ledger.committed([ta])
    assert a.acks() == [5]


def test_sinks_on_other_threads_commit_while_the_source_collects():
    """(Threads switched as often as the interpreter can: a committed ticket appended while
    the source takes the others must not be lost.)"""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        _commit_while_collecting()
    finally:
        sys.setswitchinterval(interval)


def _commit_while_collecting() -> None:
    ledger = CommitLedger()
    window = AckWindow(ledger)
    tickets = [window.take(i % 65535 + 1) for i in range(20_000)]
    acked: list[int] = []
    chunks = [tickets[i::4] for i in range(4)]
    threads = [threading.Thread(target=ledger.committed, args=(c,)) for c in chunks]
    for th in threads:
        th.start()
    while len(acked) < len(tickets):
        acked += window.acks()
        if not any(th.is_alive() for th in threads) and len(acked) < len(tickets):
            acked += window.acks()
            break
    for th in threads:
        th.join()
    acked += window.acks()
    assert acked == [i % 65535 + 1 for i in range(20_000)]


def test_tickets_of_other_processes_are_relayed_and_old_runs_acknowledge_nothing():
    reader = CommitLedger(process=1, run=7)
    window = AckWindow(reader)
    ticket = window.take(42)
    sink_side = CommitLedger(process=0, run=3)  # the process that owns the device
    mine, foreign = sink_side.split([ticket, NO_TICKET])
    assert mine == [] and foreign == {1: [ticket]}
    reader.committed(foreign[1])  # what the relay hands back
    assert window.acks() == [42]
    stale = AckWindow(CommitLedger(process=1, run=6)).take(43)  # the reader's previous life
    reader.committed([stale])
    assert window.take(43) is not None and window.acks() == []


def test_an_acknowledgement_lost_with_the_connection_is_sent_again_not_taken():
    """Same identifier, DUP, same topic and payload: our PUBACK never reached the broker."""
    ledger = CommitLedger()
    window = AckWindow(ledger)
    ledger.committed([window.take(9, False, hash(("t", b"x")))])
    assert window.acks() == [9]
    assert window.take(9, True, hash(("t", b"x"))) is None
    assert window.acks() == [9]  # acknowledged again, in its turn
    other = window.take(9, True, hash(("t", b"y")))  # reused for another message
    assert other is not None
