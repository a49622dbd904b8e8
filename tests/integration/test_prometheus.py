"""A real Prometheus server scrapes a running engine: the counters add up through PromQL."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from storage.embedded import free_port
from tests.conftest import EngineProcess
from tests.integration.helpers import Publisher, exposition, now_ms, scrape, wait_until

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None, reason="no prometheus")


def promql(port: int, query: str) -> float | None:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            result = json.loads(response.read())["data"]["result"]
    except OSError:
        return None
    return float(result[0]["value"][1]) if result else None


def test_prometheus_sees_exactly_the_readings_published(
    tmp_path: Path, engine_env: dict[str, str], mqtt_url: str, topic_prefix: str
):
    metrics_port, prom_port = free_port(), free_port()
    engine = EngineProcess(dict(engine_env, TWIN_METRICS_PORT=str(metrics_port))).start()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: twin\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
    )
    prom = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        before = scrape("twin_readings_accepted_total", metrics_port)
        pub = Publisher(mqtt_url, topic_prefix)
        n, t = 250, now_ms() - 10_000
        for i in range(n):
            pub.send(f"{topic_prefix.strip('/')}-p{i % 5}", "telemetry",
                     {"ts": t + i, "seq": i, "values": {"load_pct": 50.0}})  # fmt: skip
        pub.close()
        moved = wait_until(
            lambda: scrape("twin_readings_accepted_total", metrics_port) - before == n, 20
        )
        assert moved, engine.log
        time.sleep(1)
        assert scrape("twin_readings_accepted_total", metrics_port) - before == n  # not more
        assert scrape("twin_sink_batch_duration_seconds_count", metrics_port) > 0
        assert scrape("twin_twins_online", metrics_port) == 5  # the devices just heard from
        snapshots = wait_until(
            lambda: scrape("twin_snapshot_duration_seconds_count", metrics_port) > 0, 10
        )  # TWIN_SNAPSHOT_INTERVAL_S=1
        assert snapshots

        query = 'twin_readings_accepted_total{job="twin"}'
        seen = wait_until(lambda: promql(prom_port, query) == before + n, 30, 0.5)
        assert seen, promql(prom_port, query)

        exposition_text = exposition(metrics_port)
        checked = subprocess.run(["promtool", "check", "metrics"], input=exposition_text,
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr
        for stage in ("twin", "postgres", "redis"):  # latency from device time, per stage
            count = f'twin_latency_seconds_count{{stage="{stage}"}}'
            assert any(line.startswith(count + " ") and float(line.split()[-1]) > 0
                       for line in exposition_text.splitlines()), stage  # fmt: skip
    finally:
        prom.terminate()
        prom.wait(10)
        assert engine.stop() == 0
    # a snapshot line at stop (and every few minutes), never one per snapshot
    snapshot_lines = [line for line in engine.lines if "twin snapshots:" in line]
    assert len(snapshot_lines) == 1 and " written in " in snapshot_lines[0], engine.log
