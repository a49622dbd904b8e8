"""Anomaly detection in a running engine: the anomalies table, the registry and the twin hash."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import redis

from tests.conftest import ROOT, EngineProcess
from tests.integration.helpers import Publisher, now_ms, q, wait_until
from tests.unit.test_nab import write_corpus
from tests.unit.test_replay import skab_file
from twin.anomaly.config import FLEET


def test_engine_writes_anomaly_episodes_and_health(
    engine_env: dict[str, str],
    database_url: str,
    mqtt_url: str,
    topic_prefix: str,
    redis_url: str,
    redis_prefix: str,
):
    engine = EngineProcess(dict(engine_env, TWIN_DETECTOR_WARMUP="30")).start()
    device = f"{topic_prefix.strip('/')}-pump"
    pub = Publisher(mqtt_url, topic_prefix)
    pub.send(device, "attributes", {"kind": "machine", "profile": "pump"})
    rng = random.Random(3)
    t = now_ms() - 120_000
    for i in range(80):
        vib = 2.0 + rng.gauss(0, 0.05) + (3.0 if i >= 60 else 0.0)  # bearing suddenly rough
        values = {"load_pct": 75.0, "vibration_mm_s": round(vib, 3), "temperature_c": 55.0}
        pub.send(device, "telemetry", {"ts": t + i * 1000, "seq": i, "values": values})
    pub.flush()
    rows = wait_until(
        lambda: q(
            database_url,
            "SELECT detector, kind, metric, severity, started_at, ended_at, model_version "
            "FROM anomalies WHERE device_id = %s AND detector = 'level'",
            device,
        )
    )
    assert rows, engine.log
    detector, kind, metric, severity, started, ended, version = rows[0]
    assert severity == "critical"  # 3 mm/s over a 0.05 mm/s spread
    assert (detector, kind, metric, ended) == ("level", "high", "vibration_mm_s", None)
    assert int(started.timestamp() * 1000) >= t + 60_000
    registered = q(database_url, "SELECT name FROM model_versions WHERE version = %s", version)
    assert registered == [("fleet",)]
    live = redis.Redis.from_url(redis_url, decode_responses=True)
    key = f"{redis_prefix}twin:{device}"
    assert wait_until(lambda: int(live.hget(key, "health") or 100) < 100)
    assert int(live.hget(key, "anomalies_open") or 0) >= 1
    pub.close()
    assert engine.stop() == 0
    # the restarted engine carries the detectors' state: no second warm-up, the episode goes on
    engine = EngineProcess(dict(engine_env, TWIN_DETECTOR_WARMUP="30")).start()
    pub = Publisher(mqtt_url, topic_prefix)
    for i in range(80, 90 + FLEET.hold):  # back to normal for longer than an episode's hold
        values = {"load_pct": 75.0, "vibration_mm_s": 2.0, "temperature_c": 55.0}
        pub.send(device, "telemetry", {"ts": t + i * 1000, "seq": i, "values": values})
    pub.close()
    assert wait_until(
        lambda: (
            q(
                database_url,
                "SELECT count(*) FROM anomalies WHERE device_id = %s AND detector = 'level' "
                "AND ended_at IS NOT NULL",
                device,
            )[0][0]
            == 1
        )
    ), engine.log  # the same episode closed once vibration was back to normal
    assert engine.stop() == 0


def test_evaluate_skab_reports_scores_rows_and_registry(
    tmp_path: Path, engine_env: dict[str, str], database_url: str
):
    files = tmp_path / "skab"
    files.mkdir()
    for n in range(2):
        skab_file(files / f"{n}.csv", rows=700, anomaly_from=500, anomaly_to=650)
    rows_csv, report = tmp_path / "rows.csv", tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "evaluate", "skab", str(files), "--rows-csv",
         str(rows_csv), "--report", str(report)],
        env=engine_env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    scores = json.loads(report.read_text())
    assert scores["files"] == 2 and scores["f1"] > 0.8 and scores["far"] < 0.05
    assert scores["window"]["windows"] == 2 and scores["window"]["standard"] > 50
    lines = rows_csv.read_text().splitlines()
    assert lines[0] == "file,datetime,score,verdict" and len(lines) == 1 + 2 * 700
    assert {line.rsplit(",", 1)[1] for line in lines[1:]} <= {"0", "1"}
    version = done.stdout.rsplit("recorded in model_versions as ", 1)[1].strip()
    stored = q(database_url, "SELECT evaluations FROM model_versions WHERE version = %s", version)
    assert stored and stored[0][0][-1]["f1"] == scores["f1"]


def test_evaluate_synthetic_scores_each_family_by_rows_and_windows(
    tmp_path: Path, engine_env: dict[str, str], database_url: str
):
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "evaluate", "synthetic", "--seed", "3",
         "--per-family", "1", "--report", str(report)],
        env=engine_env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    scores = json.loads(report.read_text())
    assert scores["series"] == 8 and set(scores["per_family"]) >= {"seasonal", "stuck", "missing"}
    assert scores["window"]["windows"] == 9  # one per series, two in the seasonal one
    for name in ("standard", "reward_low_fp", "reward_low_fn"):
        assert -100 < scores["window"][name] <= 100, name
    assert "low_fn" in done.stdout and "stuck" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "flows.cli", "evaluate", "synthetic", "--window", "2"],
        env=engine_env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "[0, 1)" in bad.stderr


def test_evaluate_nab_scores_a_benchmark_layout_corpus(
    tmp_path: Path, engine_env: dict[str, str], database_url: str
):
    corpus, report = tmp_path / "corpus", tmp_path / "nab.json"
    write_corpus(corpus)
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "evaluate", "nab", str(corpus), "--report",
         str(report)],
        env=engine_env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    scores = json.loads(report.read_text())
    assert scores["files"] == 1 and scores["rows"] == 3_000
    assert scores["onsets"]["detected"] == 1 and scores["scored"]["detected"] == 1
    assert scores["scored"]["threshold"] == 0.5 and scores["scored"]["false_detections"] == 0
    assert "artificial" in done.stdout and "recorded in model_versions" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "flows.cli", "evaluate", "nab", str(tmp_path / "nothing")],
        env=engine_env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "combined_windows.json" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_evaluate_all_gives_a_line_per_evaluation(tmp_path: Path, engine_env: dict[str, str]):
    files = tmp_path / "skab"
    files.mkdir()
    skab_file(files / "0.csv", rows=700, anomaly_from=500, anomaly_to=650)
    report = tmp_path / "all.json"
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "evaluate", "all", "--skab", str(files), "--seeds",
         "1", "--per-family", "1", "--report", str(report)],
        env=engine_env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    scores = json.loads(report.read_text())
    assert scores[f"skab:{files}"]["f1"] > 0.8
    assert scores["synthetic"]["seeds"] == [1] and len(scores["synthetic"]["standard"]) == 1
    assert scores["scenario"]["least_detected_share"] == 1.0  # as the README states for seed 1
    assert (
        len(
            [
                line
                for line in done.stdout.splitlines()
                if line.startswith(("skab", "synth", "scen"))
            ]
        )
        == 3
    )
