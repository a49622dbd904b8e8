"""Measure the detectors on labelled data, through the same code the dataflow runs.

SKAB protocol (``../shared/datasets/README.md``): each file is one device seen from its first
row (a file without an ``anomaly`` column, such as ``anomaly-free.csv``, is all normal); the
first 400 rows learn and are not scored; every later row's verdict (1 if any anomaly is open
after the row) is compared with the ``anomaly`` label, and TP, FP, TN, FN are summed
over all files. F1 = TP / (TP + (FP + FN) / 2), FAR = FP / (FP + TN), MAR = FN / (FN + TP).
Detection delay per file: rows (seconds) from the first labelled row to the first verdict 1
at or after it. The detectors never see the labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from simulators.faults import Fault
from simulators.replay import read_series
from simulators.scenario import Scenario
from simulators.traffic import Traffic, TrafficConfig
from twin.anomaly.config import FLEET, SKAB, DetectorConfig
from twin.anomaly.detectors import AnomalyDetectors, DetectorState
from twin.errors import ConfigurationError
from twin.profiles import ProfileBook

SKAB_LEARN_ROWS = 400


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.tn += other.tn
        self.fn += other.fn

    @property
    def f1(self) -> float:
        return self.tp / (self.tp + (self.fp + self.fn) / 2) if self.tp else 0.0

    @property
    def far(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def mar(self) -> float:
        return self.fn / (self.fn + self.tp) if self.fn + self.tp else 0.0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def accuracy(self) -> float:
        total = self.tp + self.fp + self.tn + self.fn
        return (self.tp + self.tn) / total if total else 0.0


@dataclass
class FileResult:
    path: Path
    counts: Counts
    delay_s: float | None
    """Seconds from the first labelled anomaly to the first alarm at or after it."""
    rows: list[tuple[int, float, int, int]] = field(default_factory=list)
    """(ts_ms, score, verdict, label) for every row, for the CSV and the plots."""
    columns: dict[str, list[float]] = field(default_factory=dict)


def skab_files(paths: Iterable[str | Path]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(p.rglob("*.csv")))
        elif p.exists():
            found.append(p)
        else:
            raise ConfigurationError(f"no such file or directory: {p}")
    if not found:
        raise ConfigurationError("no SKAB files found")
    return found


def evaluate_skab_file(path: Path, config: DetectorConfig = SKAB) -> FileResult:
    series = read_series(path, exclude=())
    label_col = next((c for c in series.metrics if c.lower() == "anomaly"), None)
    label_name = series.metrics[label_col] if label_col is not None else ""  # a clean file
    skip = {
        name for col, name in series.metrics.items() if col.lower() in ("anomaly", "changepoint")
    }
    detectors = AnomalyDetectors(config)
    state = DetectorState()
    counts = Counts()
    result = FileResult(path=path, counts=counts, delay_s=None)
    first_label_ts: int | None = None
    for i, (ts, row) in enumerate(series.rows):
        label = int(row.get(label_name, 0.0) >= 0.5)
        values = {k: v for k, v in row.items() if k not in skip}
        obs = detectors.observe(state, path.stem, None, ts, values)
        verdict = int(obs.flagged)
        result.rows.append((ts, obs.score, verdict, label))
        for k, v in values.items():
            result.columns.setdefault(k, []).append(v)
        if i < SKAB_LEARN_ROWS:
            continue
        if label and first_label_ts is None:
            first_label_ts = ts
        if first_label_ts is not None and verdict and result.delay_s is None:
            result.delay_s = (ts - first_label_ts) / 1000
        if verdict and label:
            counts.tp += 1
        elif verdict:
            counts.fp += 1
        elif label:
            counts.fn += 1
        else:
            counts.tn += 1
    return result


def evaluate_skab(
    paths: Iterable[str | Path], config: DetectorConfig = SKAB
) -> tuple[Counts, list[FileResult]]:
    total = Counts()
    results = []
    for path in skab_files(paths):
        r = evaluate_skab_file(path, config)
        total.add(r.counts)
        results.append(r)
    return total, results


# -- simulator runs with ground truth -----------------------------------------------------


@dataclass
class Detection:
    device_id: str
    detector: str
    metric: str
    started_ms: int
    detected_ms: int


@dataclass
class KindResult:
    kind: str
    injected: int = 0
    detected: int = 0
    delays_s: list[float] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.detected / self.injected if self.injected else 0.0

    @property
    def median_delay_s(self) -> float | None:
        if not self.delays_s:
            return None
        d = sorted(self.delays_s)
        mid = len(d) // 2
        return d[mid] if len(d) % 2 else (d[mid - 1] + d[mid]) / 2


@dataclass
class ScenarioResult:
    kinds: dict[str, KindResult]
    quiet_devices: int
    quiet_hours: float
    false_alarms: int
    readings: int
    detections: list[Detection] = field(default_factory=list)

    @property
    def false_per_device_hour(self) -> float:
        return self.false_alarms / self.quiet_hours if self.quiet_hours else 0.0


GRACE_MS = 30_000
"""A detection up to this long after a fault's end still counts (dropouts are seen late)."""


def _matches(fault: Fault, d: Detection) -> bool:
    if d.device_id != fault.device_id:
        return False
    if not fault.start_ms <= d.detected_ms <= fault.end_ms + GRACE_MS:
        return False
    if fault.kind == "dropout":
        return d.detector == "dropout"
    if fault.kind == "gps_jump":
        return d.detector == "position"
    return any(m in fault.metrics for m in d.metric.split("+"))  # a relation names several


def evaluate_scenario(
    traffic: Traffic,
    faults: list[Fault],
    config: DetectorConfig = FLEET,
    silence_check_ms: int = 1000,
) -> ScenarioResult:
    """Run a simulated fleet's telemetry (no MQTT) through the detectors and score them."""
    book = ProfileBook()
    detectors = AnomalyDetectors(config)
    profiles = {d.device_id: book.get(d.profile) for d in traffic.fleet}
    states: dict[str, DetectorState] = {d.device_id: DetectorState() for d in traffic.fleet}
    decode = msgspec.json.Decoder()
    detections: list[Detection] = []
    clock = 0
    next_check = 0
    readings = 0
    for msg in traffic.messages():
        if msg.kind != "telemetry" or msg.bad_reason:
            continue
        device_id = traffic.fleet[msg.device].device_id
        body = decode.decode(msg.payload)
        for r in body if isinstance(body, list) else [body]:
            readings += 1
            ts = r["ts"]
            obs = detectors.observe(
                states[device_id], device_id, profiles[device_id], ts, r["values"]
            )
            detections.extend(
                Detection(a.device_id, a.detector, a.metric, a.started_ms, ts)
                for a in obs.events
                if a.ended_ms is None
            )
            clock = max(clock, ts)
        if clock >= next_check:  # the fleet's clock: dropouts are judged against it
            next_check = clock + silence_check_ms
            for dev_id, st in states.items():
                for a in detectors.check_silence(st, dev_id, clock):
                    detections.append(Detection(dev_id, a.detector, a.metric, a.started_ms, clock))
    kinds: dict[str, KindResult] = {}
    for f in faults:
        kr = kinds.setdefault(f.kind, KindResult(f.kind))
        kr.injected += 1
        hits = [d for d in detections if _matches(f, d)]
        if hits:
            kr.detected += 1
            kr.delays_s.append((min(d.detected_ms for d in hits) - f.start_ms) / 1000)
    faulty = {f.device_id for f in faults}
    quiet = [d.device_id for d in traffic.fleet if d.device_id not in faulty]
    warm_ms = traffic.start_ms + round(
        config.warmup_readings * len(traffic.fleet) / traffic.config.rate * 1000
    )
    false_alarms = sum(
        1 for d in detections if d.device_id not in faulty and d.detected_ms >= warm_ms
    )
    hours = len(quiet) * max(0.0, (clock - warm_ms) / 3_600_000)
    return ScenarioResult(kinds, len(quiet), hours, false_alarms, readings, detections)


SCENARIO_START_MS = 1_790_000_000_000
"""Device time of a scenario evaluation (it runs as fast as it can, never on the clock)."""


def run_scenario(
    scenario: Scenario, seed: int, config: DetectorConfig, **overrides: float
) -> tuple[TrafficConfig, ScenarioResult]:
    """A scenario's fleet with its faults planned from ``seed``, through the detectors;
    ``overrides`` replace values of the scenario's run (devices, rate, duration_s)."""
    run = {**scenario.run, **overrides}
    run.pop("bad_fraction", None)  # parsing is not what is measured here
    traffic_config = TrafficConfig(seed=seed, **run)
    fleet = Traffic(traffic_config, SCENARIO_START_MS).fleet
    faults = scenario.plan(fleet, seed, SCENARIO_START_MS, traffic_config.duration_s)
    traffic = Traffic(traffic_config, SCENARIO_START_MS, faults)
    return traffic_config, evaluate_scenario(traffic, faults, config)
