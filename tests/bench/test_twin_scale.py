"""Memory per twin at 100,000 and 1,000,000 twins in one shard, measured as the process's RSS
(prints figures), with everything the engine keeps per twin: the vectorised detectors, the
built-in alert rules and the twin's own state.

The twins come back as after a restart: each from a snapshot of a vehicle twin that saw 20
simulated readings (1,000 such snapshots, each reused under other device ids), restored on its
first reading, in batches of 16,000 devices as the engine's source delivers them. Snapshots are
made per batch and dropped once restored, so the RSS growth is what the twins take (with the
allocator's own overhead, which an estimate would hide). The garbage collector is tuned as in the
engine (:mod:`flows.runtime.collector`)."""

from __future__ import annotations

import gc
import random
import time

import pytest

from tests.bench.test_restart import rss_mib
from tests.bench.test_twin_memory import reading, vehicle_twins
from twin.alerts.book import RuleBook
from twin.alerts.defaults import BUILTIN_RULES
from twin.alerts.lifecycle import AlertEngine
from twin.anomaly.bank import Columns
from twin.anomaly.config import FLEET
from twin.processor import TwinProcessor
from twin.records import DeviceInbox

pytestmark = pytest.mark.bench
T0 = 1_763_683_200_000
BATCH = 16_000


def processor(warm: dict[str, bytes] | None = None) -> TwinProcessor:
    engine = AlertEngine(RuleBook(BUILTIN_RULES))
    return TwinProcessor(detectors=Columns(FLEET), alerts=engine, warm_states=warm).for_shard()


def templates(n: int) -> list[tuple[str, bytes]]:
    """``n`` twins' encoded snapshots, each with its device id."""
    maker = processor()
    devices = [f"tpl-{i:06d}" for i in range(n)]
    states = vehicle_twins(maker, devices, 20)
    return [(d, maker.snapshot(states[d], T0).state) for d in devices]


@pytest.mark.parametrize("twins", [100_000, 1_000_000])
def test_memory_per_twin_at_scale(twins: int, engine_collector: None) -> None:
    shapes = templates(1_000)
    warm: dict[str, bytes] = {}
    shard = processor(warm)
    states: dict = {}
    rng = random.Random(3)
    gc.collect()
    before = rss_mib()
    started = time.perf_counter()
    for first in range(0, twins, BATCH):
        devices = [f"veh-{i:07d}" for i in range(first, min(twins, first + BATCH))]
        for i, dev in enumerate(devices):
            template_id, state = shapes[(first + i) % len(shapes)]
            warm[dev] = state.replace(template_id.encode(), dev.encode())
        work = [(None, d, DeviceInbox(d, [reading(d, 20, rng)], 1)) for d in devices]
        for state, out in shard.process_batch(work, T0 + 21_000):
            states[out.device_id] = state
        del work
    elapsed = time.perf_counter() - started
    gc.collect()
    after = rss_mib()
    print(
        f"\n[bench scale] {twins} vehicle twins (11 metrics, detectors and built-in rules on), "
        f"each restored from its snapshot and given one reading: RSS {before:.0f} → "
        f"{after:.0f} MiB = {(after - before) * 1024 / twins:.2f} KiB per twin; "
        f"{elapsed:.1f} s ({elapsed / twins * 1e6:.0f} µs per twin)"
    )
    assert len(states) == twins and not warm
    assert all(s.readings == 21 for s in states.values())
