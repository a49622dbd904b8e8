"""The cyclic garbage collector, tuned for a process that streams."""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000


def off_the_hot_path() -> None:
    """Keep the cyclic garbage collector off the hot path.

    The twin step allocates a few dozen short-lived objects per reading; with the default
    threshold (700) the collector ran every few hundred readings and walked the young objects
    each time, which cost a third of the engine's backlog throughput. What is loaded at start
    (modules, profiles, snapshots) is moved out of its reach, and the young generation
    collects every 50,000 allocations; reference counting still frees nearly all at once.
    """
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
