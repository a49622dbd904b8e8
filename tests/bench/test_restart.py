"""A restart at scale (prints figures): 100,000 twin snapshots loaded from PostgreSQL (over one
connection, as before, and over the engine's parts), then every
twin restored into a shard's vectorised detectors, as the engine does on each device's first
activation. Memory is measured as the process's RSS before and after the restore (the
loaded snapshots kept, so that freeing them does not hide what the twins take).

The snapshots come from 1,000 vehicle twins that each saw 20 simulated readings with the
detectors on; each is stored 100 times under other device ids (same state, own id)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import psycopg
import pytest

from storage.catalog import SNAPSHOT_PARTS, load_snapshots, load_snapshots_in_parts
from storage.database import migrate, psycopg_url
from tests.bench.test_twin_memory import vehicle_twins
from tests.conftest import fresh_database
from twin.anomaly.bank import Columns
from twin.anomaly.config import FLEET
from twin.processor import TwinProcessor

pytestmark = pytest.mark.bench
T0 = 1_763_683_200_000


def rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmRSS:") / 1024


def templates(n: int) -> list[tuple[str, str]]:
    """``n`` twins' encoded snapshots, each with its device id."""
    processor = TwinProcessor(detectors=Columns(FLEET)).for_shard()
    devices = [f"tpl-{i:06d}" for i in range(n)]
    states = vehicle_twins(processor, devices, 20)
    return [(d, processor.snapshot(states[d], T0).state.decode()) for d in devices]


@pytest.mark.parametrize("twins", [100_000])
def test_restart_restores_every_twin(pg_admin_url: str, twins: int, engine_collector: None) -> None:
    shapes = templates(1_000)
    with fresh_database(pg_admin_url) as db:
        migrate(db)
        buf = io.StringIO()
        for i in range(twins):
            template_id, state = shapes[i % len(shapes)]
            dev = f"veh-{i:07d}"
            buf.write(f"{dev}\t2025-11-21 00:00:20+00\t2025-11-21 00:00:20+00\t1\t"
                      f"{state.replace(template_id, dev)}\t2025-11-21 00:00:20+00\n")  # fmt: skip
        with psycopg.connect(psycopg_url(db)) as conn:
            with (
                conn.cursor() as cur,
                cur.copy(
                    "COPY twin_snapshots (device_id, taken_at, last_seen, state_version, state, "
                    "txn_at) FROM STDIN"
                ) as copy,
            ):
                copy.write(buf.getvalue())
            conn.commit()
        del buf
        started = time.perf_counter()
        with psycopg.connect(psycopg_url(db)) as conn:
            whole = load_snapshots(conn)  # the previous design: one connection
        one = time.perf_counter() - started
        sizes = {d: len(v) for d, v in whole.items()}
        del whole  # before the load that is kept: its memory is reused, RSS stays fair
        started = time.perf_counter()
        warm = load_snapshots_in_parts(db)
        loaded = time.perf_counter() - started
        assert {d: len(v) for d, v in warm.items()} == sizes
    held = dict(warm)  # the snapshots stay in memory, so RSS grows by the twins alone
    before = rss_mib()
    processor = TwinProcessor(detectors=Columns(FLEET), warm_states=warm).for_shard()
    started = time.perf_counter()
    restored = [processor.start(device_id)[0] for device_id in list(warm)]
    bank = processor.detectors
    assert isinstance(bank, Columns)
    assert bank.columns.tracks.i["last_ts"].any()  # restored tracks are written on first read
    restore = time.perf_counter() - started
    after = rss_mib()
    print(
        f"\n[bench restart] {twins} twins: snapshots loaded in {loaded:.1f} s over "
        f"{SNAPSHOT_PARTS} connections ({one:.1f} s over one), every twin "
        f"restored into the shard's columns in {restore:.1f} s ({restore / twins * 1e6:.0f} µs "
        f"each); total {loaded + restore:.1f} s; RSS {before:.0f} → {after:.0f} MiB = "
        f"{(after - before) * 1024 / twins:.2f} KiB per restored twin (11 metrics, detectors on)"
    )
    assert len(restored) == twins and not processor.warm_states and len(held) == twins
    assert all(s.readings == 20 for s in restored)
