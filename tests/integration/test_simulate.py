"""``twin simulate`` against a real broker: rate, completeness, faults and connections."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulators.publisher import Publisher, PublisherConfig
from simulators.traffic import TrafficConfig
from tests.conftest import ROOT


class Counting:
    """A QoS 1 subscriber that counts what arrives, per channel and per device."""

    def __init__(self, mqtt_url: str, prefix: str) -> None:
        parts = urlsplit(mqtt_url)
        self.by_channel: Counter[str] = Counter()
        self.devices: set[str] = set()
        self.payloads: list[bytes] = []
        self._ready = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{prefix.strip('/')}-count"
        )
        self.client.on_connect = lambda c, *a: c.subscribe(f"{prefix}devices/#", qos=1)
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()
        assert self._ready.wait(10)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        _, _, device, channel = msg.topic.rsplit("/", 3)
        self.by_channel[channel] += 1
        self.devices.add(device)
        if channel == "telemetry":
            self.payloads.append(msg.payload)

    def wait_for(self, channel: str, count: int, timeout_s: float = 30) -> int:
        deadline = time.monotonic() + timeout_s
        while self.by_channel[channel] < count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # anything extra would show up now
        return self.by_channel[channel]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_simulate_cli_holds_2000_readings_per_second_and_writes_ground_truth(
    tmp_path: Path, mqtt_url: str, topic_prefix: str, engine_env: dict[str, str]
):
    counter = Counting(mqtt_url, topic_prefix)
    truth, report_file = tmp_path / "truth.jsonl", tmp_path / "report.json"
    scenario = tmp_path / "short.toml"
    scenario.write_text(
        'name = "short"\n[[faults]]\nkind = "bearing_wear"\nshare = 0.1\nstart_s = [1, 4]\n'
        'duration_s = 4\n[[faults]]\nkind = "overheating"\ndevices = ["veh-00003"]\n'
        "start_s = 2\nduration_s = [3, 5]\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "simulate", "--devices", "200", "--rate", "2000",
         "--duration", "10", "--scenario", str(scenario), "--bad-fraction", "0.01",
         "--ground-truth", str(truth), "--report", str(report_file), "--seed", "3",
         "--client-id", topic_prefix.strip("/")],
        env=engine_env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(report_file.read_text())
    start = report["start_ms"]
    slots = report["readings"] + report["bad_messages"]  # each slot: a reading or a bad one
    dropped = sum(1 for line in truth.read_text().splitlines() if '"dropout"' in line)
    assert report["kept_up"], report
    assert abs(slots / report["seconds"] - 2000) <= 0.05 * 2000 or dropped, report
    assert abs(report["achieved_rate"] - 2000) <= 0.05 * 2000, report
    telemetry = report["messages"] - report["events"]
    assert counter.wait_for("telemetry", telemetry) == telemetry  # every message arrived once
    assert counter.by_channel["attributes"] == 200
    assert counter.by_channel["events"] == report["events"]
    assert sum(report["bad_by_reason"].values()) == report["bad_messages"] > 0
    faults = [json.loads(line) for line in truth.read_text().splitlines()]
    assert faults and all(f["end_ms"] - f["start_ms"] > 0 for f in faults)
    assert Counter(f["fault"] for f in faults) == {"bearing_wear": 8, "overheating": 1}
    assert all(start + 1000 <= f["start_ms"] < f["end_ms"] <= start + 10_000 for f in faults)
    counter.close()


def test_one_connection_per_device_delivers_everything(mqtt_url: str, topic_prefix: str):
    parts = urlsplit(mqtt_url)
    counter = Counting(mqtt_url, topic_prefix)
    publisher = Publisher(
        PublisherConfig(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 1883,
            traffic=TrafficConfig(devices=25, rate=250, duration_s=2, prefix=topic_prefix),
            per_device=True,
            client_id=topic_prefix.strip("/"),
        )
    )
    report = publisher.run()
    assert report.connections == 25
    assert report.readings == 500 and report.unacknowledged_connections == 0
    assert counter.wait_for("telemetry", 500) == 500
    assert len(counter.devices) == 25
    counter.close()


SKAB_DIRS = [ROOT.parent / "shared" / "datasets" / "skab", Path("/work/shared/datasets/skab")]


def _skab_sample(tmp_path: Path) -> Path:
    from tests.unit.test_replay import skab_file

    return skab_file(tmp_path / "skab.csv", rows=120)


def _real_skab() -> Path | None:
    return next(
        (d / "valve1" / "0.csv" for d in SKAB_DIRS if (d / "valve1" / "0.csv").exists()), None
    )


@pytest.mark.parametrize("which", ["generated", "shipped-dataset"])
def test_replay_delivers_every_row_once_in_order(
    which: str, tmp_path: Path, deep_broker: int, topic_prefix: str, engine_env: dict[str, str]
):
    path = _skab_sample(tmp_path) if which == "generated" else _real_skab()
    if path is None:
        pytest.skip("the SKAB dataset is not next to this checkout")
    from simulators.replay import read_series

    # a broker of its own: a default one queues at most 1,000 messages for a subscriber
    # that falls behind (as this counting one may on a busy machine) and drops the rest
    mqtt_url = f"mqtt://127.0.0.1:{deep_broker}"
    engine_env = dict(engine_env, TWIN_MQTT_URL=mqtt_url)

    expected = read_series(path).rows
    counter = Counting(mqtt_url, topic_prefix)
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "replay", str(path), "--device", "skab-1", "--fast",
         "--client-id", topic_prefix.strip("/")],
        env=engine_env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert counter.wait_for("telemetry", len(expected)) == len(expected)
    got = [json.loads(p) for p in counter.payloads]
    assert [r["seq"] for r in got] == list(range(1, len(expected) + 1))  # once, in order
    assert [(r["ts"], r["values"]) for r in got] == [(ts, v) for ts, v in expected]
    counter.close()


def test_replay_at_speed_follows_the_recorded_intervals(
    tmp_path: Path, mqtt_url: str, topic_prefix: str, engine_env: dict[str, str]
):
    path = tmp_path / "series.csv"
    path.write_text(
        "time,temperature_c\n" + "".join(f"{1700000000 + i},{40 + i}\n" for i in range(21))
    )
    counter = Counting(mqtt_url, topic_prefix)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "replay", str(path), "--device", "r-1", "--speed",
         "10", "--rebase", "--client-id", topic_prefix.strip("/")],
        env=engine_env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert counter.wait_for("telemetry", 21) == 21
    assert time.monotonic() - started >= 2.0  # 20 recorded seconds at 10x
    first = json.loads(counter.payloads[0])
    assert abs(first["ts"] - time.time() * 1000) < 60_000  # re-based to now
    counter.close()


def test_publish_metrics_add_up_to_the_report(mqtt_url: str, topic_prefix: str):
    from simulators.metrics import PublishMetrics

    parts = urlsplit(mqtt_url)
    found = PublishMetrics()
    config = PublisherConfig(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 1883,
        traffic=TrafficConfig(
            devices=20, rate=400, duration_s=2.5, prefix=topic_prefix, bad_fraction=0.05
        ),
        client_id=topic_prefix.strip("/"),
    )
    total = 0
    for _ in range(2):  # a second run carries the counters on
        report = Publisher(config, metrics=found).run()
        total += report.readings
        value = found.registry.get_sample_value
        assert value("twin_sim_readings_published_total") == total
        assert value("twin_sim_target_readings_per_second") == 400
        assert value("twin_sim_devices") == 20
    assert report.bad_messages > 0
    for reason, n in report.bad_by_reason.items():
        assert value("twin_sim_bad_messages_published_total", {"reason": reason}) >= n


def test_simulate_serves_its_metrics_while_it_runs(
    mqtt_url: str, topic_prefix: str, engine_env: dict[str, str]
):
    from storage.embedded import free_port
    from tests.integration.helpers import exposition

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "simulate", "--devices", "10", "--rate", "200",
         "--duration", "5", "--metrics-port", str(port), "--client-id", topic_prefix.strip("/")],
        env=engine_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: list[float] = []
    while proc.poll() is None:
        try:
            text = exposition(port)
        except OSError:
            time.sleep(0.2)
            continue
        for line in text.splitlines():
            if line.startswith("twin_sim_readings_published_total "):
                seen.append(float(line.split()[-1]))
        assert "twin_messages_received_total" not in text  # only the publisher's own
        time.sleep(0.5)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    published = int(out.split("published ")[1].split()[0])
    assert seen and seen == sorted(seen) and 0 < seen[-1] <= published, seen


def test_a_metrics_port_in_use_is_a_one_line_error(engine_env: dict[str, str]):
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        done = subprocess.run(
            [sys.executable, "-m", "flows.cli", "simulate", "--duration", "1",
             "--metrics-port", str(taken.getsockname()[1])],
            env=engine_env, cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode != 0
    assert "cannot serve metrics on port" in done.stderr
    assert "Traceback" not in done.stderr
