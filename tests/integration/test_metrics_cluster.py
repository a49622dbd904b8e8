"""Totals stay exact with several workers in one process and across a cluster of processes."""

from __future__ import annotations

import signal
import socket

from storage.embedded import free_port
from tests.conftest import EngineProcess
from tests.integration.helpers import Publisher, now_ms, scrape, wait_until


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def publish(mqtt_url: str, prefix: str, devices: int, per_device: int) -> int:
    pub = Publisher(mqtt_url, prefix)
    t = now_ms() - 60_000
    for i in range(per_device):
        for d in range(devices):
            pub.send(f"{prefix.strip('/')}-c{d}", "telemetry",
                     {"ts": t + i * 100, "seq": i, "values": {"load_pct": 40.0 + d}})  # fmt: skip
    pub.flush()
    pub.close()
    return devices * per_device


def check_totals(ports: list[int], mqtt_url: str, prefix: str, log: str) -> None:
    devices, per_device = 12, 25
    n = publish(mqtt_url, prefix, devices, per_device)
    moved = wait_until(lambda: scrape("twin_readings_accepted_total", *ports) == n, 30)
    assert moved, (scrape("twin_readings_accepted_total", *ports), log)
    assert scrape("twin_messages_received_total", *ports) == n
    assert scrape("twin_readings_by_kind_total", *ports) == n
    assert scrape("twin_rows_written_total", *ports) >= n  # telemetry plus registry rows
    assert scrape("twin_twins_active", *ports) == devices
    assert scrape("twin_twins_online", *ports) == devices


def test_two_workers_count_every_reading_once(
    engine_env: dict[str, str], mqtt_url: str, topic_prefix: str
):
    port = free_port()
    env = dict(engine_env, TWIN_METRICS_PORT=str(port), TWIN_WAKE_HORIZON_H="0")
    engine = EngineProcess(env, ["--workers", "2"])
    engine.start()
    try:
        engine.wait_for("2 worker(s)", 10)
        check_totals([port], mqtt_url, topic_prefix, engine.log)
    finally:
        assert engine.stop() == 0


def test_a_cluster_of_two_processes_adds_up(
    engine_env: dict[str, str], mqtt_url: str, topic_prefix: str
):
    base = free_port()
    while not port_free(base + 1):  # process 1 serves on base + 1
        base = free_port()
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    env = dict(engine_env, TWIN_METRICS_PORT=str(base), TWIN_WAKE_HORIZON_H="0")
    engines = [
        EngineProcess(env, ["--process-id", str(i), "--addresses", addresses]) for i in (0, 1)
    ]
    try:
        for engine in engines:
            engine.spawn()
        for engine in engines:
            engine.wait_for("MQTT subscribed", 60)
        check_totals([base, base + 1], mqtt_url, topic_prefix,
                     "\n".join(e.log for e in engines))  # fmt: skip
        # each process counts its own share: both took part
        assert scrape("twin_messages_received_total", base) > 0
        assert scrape("twin_messages_received_total", base + 1) > 0
    finally:
        for engine in engines:  # a cluster stops when every process has been told to
            if engine.proc is not None and engine.proc.poll() is None:
                engine.proc.send_signal(signal.SIGTERM)
        codes = [e.wait() for e in engines if e.proc is not None]
    assert codes == [0, 0]
    # every message was acknowledged, also those committed by the other process (the relay)
    for engine in engines:
        assert not any("not yet committed" in line for line in engine.lines), engine.log


def test_cluster_flags_that_cannot_work_get_one_line(engine_env: dict[str, str]):
    import subprocess
    import sys

    from tests.conftest import ROOT

    def run(*args: str, port: str = "9108") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flows.cli", "run", *args],
                              env=dict(engine_env, TWIN_METRICS_PORT=port), cwd=ROOT,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    two = "127.0.0.1:7001;127.0.0.1:7002"
    cases = [
        (run("--process-id", "2", "--addresses", two), "between 0 and 1"),
        (run("--process-id", "1", "--addresses", two, port="65535"), "above 65535"),
        (run("--process-id", "0"), "go together"),
    ]
    for done, message in cases:
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
