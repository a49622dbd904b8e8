"""The online gauge counts the twins heard from within the window, whatever the workers do."""

from __future__ import annotations

import threading

from flows.runtime.metrics import Presence


def test_online_counts_only_devices_heard_within_the_window():
    presence = Presence(window_ms=60_000)
    presence.heard("a", 1_000)
    presence.heard("b", 50_000)
    presence.heard("a", 70_000)  # heard again: counted once
    assert presence.online(now_ms=70_000) == 2
    assert presence.online(now_ms=110_001) == 1  # b went quiet 60 s ago
    assert presence.online(now_ms=130_001) == 0


def test_counting_while_twins_are_added_from_other_threads():
    presence = Presence(window_ms=10**12)
    done = threading.Event()

    def add() -> None:
        for i in range(200_000):
            presence.heard(f"d{i}", 1)
        done.set()

    worker = threading.Thread(target=add)
    worker.start()
    counts = []
    while not done.is_set():
        counts.append(presence.online(now_ms=2))
    worker.join()
    assert counts == sorted(counts)  # never goes back, never raises
    assert presence.online(now_ms=2) == 200_000
