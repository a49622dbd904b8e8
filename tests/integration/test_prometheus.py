"""A real Prometheus server scrapes a running engine: the counters add up through PromQL."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from storage.embedded import free_port
from tests.conftest import ROOT, EngineProcess
from tests.integration.helpers import Publisher, now_ms, wait_until

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None, reason="no prometheus")


def scrape(port: int, name: str) -> float:
    """The sum of a metric's samples over its labels, read from the engine's /metrics."""
    total = 0.0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith((name + " ", name + "{")):
                total += float(line.rsplit(" ", 1)[1])
    return total


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
        before = scrape(metrics_port, "twin_readings_accepted_total")
        pub = Publisher(mqtt_url, topic_prefix)
        n, t = 250, now_ms() - 10_000
        for i in range(n):
            pub.send(f"{topic_prefix.strip('/')}-p{i % 5}", "telemetry",
                     {"ts": t + i, "seq": i, "values": {"load_pct": 50.0}})  # fmt: skip
        pub.close()
        moved = wait_until(
            lambda: scrape(metrics_port, "twin_readings_accepted_total") - before == n, 20
        )
        assert moved, engine.log
        time.sleep(1)
        assert scrape(metrics_port, "twin_readings_accepted_total") - before == n  # not more
        assert scrape(metrics_port, "twin_sink_batch_duration_seconds_count") > 0

        query = 'twin_readings_accepted_total{job="twin"}'
        seen = wait_until(lambda: promql(prom_port, query) == before + n, 30, 0.5)
        assert seen, promql(prom_port, query)

        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as response:
            exposition = response.read().decode()
        checked = subprocess.run(["promtool", "check", "metrics"], input=exposition,
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr
        for stage in ("twin", "postgres", "redis"):  # latency from device time, per stage
            count = f'twin_latency_seconds_count{{stage="{stage}"}}'
            assert any(line.startswith(count + " ") and float(line.split()[-1]) > 0
                       for line in exposition.splitlines()), stage  # fmt: skip
        exported = set()  # every series name the engine can export, sampled yet or not
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                    "gauge": ("",)}  # fmt: skip
        for line in exposition.splitlines():
            if line.startswith("# TYPE "):
                _, _, family, kind = line.split()
                exported |= {family} | {family + suffix for suffix in suffixes.get(kind, ())}
        rules = (ROOT / "monitoring" / "alerts.yml").read_text()
        named = set(re.findall(r"\b(twin_[a-z_]+|process_[a-z_]+)", rules))
        assert named and named <= exported, named - exported
    finally:
        prom.terminate()
        prom.wait(10)
        assert engine.stop() == 0
