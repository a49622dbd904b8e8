"""Scenarios: plain TOML files that set a run's defaults and the faults to inject.

```toml
name = "mixed-faults"
description = "..."

[run]                 # defaults; command-line flags win
devices = 200
rate = 400            # readings/s, all devices together
duration_s = 300
season = "WINTER"

[[faults]]
kind = "overheating"  # one of simulators.faults.FAULT_KINDS
share = 0.05          # of the devices it applies to (at least one), or: devices = ["veh-00001"]
start_s = [30, 120]   # drawn uniformly, seconds after the run starts
duration_s = [30, 90]
severity = [0.6, 1.0] # 0..1
```

Faults are drawn from the run's seed, so a scenario and a seed give the same faults every time.
"""

from __future__ import annotations

import json
import random
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulators.faults import (
    FAULT_KINDS,
    Fault,
    affected_metrics,
    candidate_metrics,
    eligible,
)
from simulators.fleet import SEASONS, Device
from twin.errors import ConfigurationError

SCENARIO_DIR = Path(__file__).with_name("scenarios")
RUN_KEYS = {
    "devices": int,
    "rate": float,
    "batch": int,
    "duration_s": float,
    "season": str,
    "vehicle_share": float,
    "bad_fraction": float,
}


@dataclass(frozen=True)
class FaultSpec:
    kind: str
    share: float = 0.0
    devices: tuple[str, ...] = ()
    start_s: tuple[float, float] = (0.0, 0.0)
    duration_s: tuple[float, float] = (10.0, 10.0)
    severity: tuple[float, float] = (1.0, 1.0)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    run: dict[str, Any] = field(default_factory=dict)
    faults: tuple[FaultSpec, ...] = ()

    def plan(
        self, fleet: Sequence[Device], seed: int, start_ms: int, duration_s: float | None = None
    ) -> list[Fault]:
        """The faults of this run, drawn from ``seed``: same inputs, same faults.

        With ``duration_s``, faults that would start after the run are left out and those still
        running at its end are cut there, so the ground truth holds only what happened.
        """
        rng = random.Random(f"faults:{seed}:{self.name}")
        planned: list[Fault] = []
        by_id = {d.device_id: d for d in fleet}
        used: set[str] = set()
        for spec in self.faults:
            if spec.devices:
                targets = [by_id[d] for d in spec.devices if d in by_id]
            else:  # one fault per device while devices last, so no fault hides another
                pool = [d for d in fleet if eligible(spec.kind, d) and d.device_id not in used]
                if not pool:
                    pool = [d for d in fleet if eligible(spec.kind, d)]
                count = max(1, round(len(pool) * spec.share)) if pool and spec.share > 0 else 0
                targets = rng.sample(pool, count)
            used.update(d.device_id for d in targets)
            for dev in targets:
                start = rng.uniform(*spec.start_s)
                length = rng.uniform(*spec.duration_s)
                severity = rng.uniform(*spec.severity)
                pick = None
                if spec.kind in ("spike", "sensor_stuck"):
                    sample = _sample_values(dev)
                    pick = rng.choice(candidate_metrics(dev, sample))
                if duration_s is not None:
                    if start >= duration_s:
                        continue
                    length = min(length, duration_s - start)
                planned.append(
                    Fault(
                        device_id=dev.device_id,
                        kind=spec.kind,
                        start_ms=start_ms + round(start * 1000),
                        end_ms=start_ms + round((start + length) * 1000),
                        severity=severity,
                        metrics=affected_metrics(spec.kind, dev, pick),
                    )
                )
        return planned


def _sample_values(device: Device) -> dict[str, float]:
    """Metric names a device reports, without advancing it."""
    if device.kind == "vehicle":
        return dict.fromkeys(
            ("speed_kmh", "rpm", "coolant_temp_c", "fuel_level_pct", "battery_v",
             "brake_pad_mm", "oil_pressure_kpa"),
            0.0,
        )  # fmt: skip
    from simulators.fleet import _MACHINE_BASE

    return dict.fromkeys(("load_pct", *_MACHINE_BASE[device.profile]), 0.0)


def _pair(value: Any, what: str) -> tuple[float, float]:
    if isinstance(value, int | float):
        return float(value), float(value)
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) for v in value)
    ):
        lo, hi = float(value[0]), float(value[1])
        if lo <= hi:
            return lo, hi
    raise ConfigurationError(f"{what} must be a number or [low, high]")


def parse(text: str, source: str = "scenario") -> Scenario:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{source}: not valid TOML ({exc})") from exc
    run = raw.get("run", {})
    if not isinstance(run, dict):
        raise ConfigurationError(f"{source}: [run] must be a table")
    for key, value in run.items():
        kind = RUN_KEYS.get(key)
        if kind is None:
            raise ConfigurationError(f"{source}: unknown [run] key {key!r}")
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigurationError(f"{source}: [run] {key} must be {kind.__name__}")
        run[key] = value
    if "season" in run and run["season"] not in SEASONS:
        raise ConfigurationError(f"{source}: season must be one of {', '.join(SEASONS)}")
    specs = []
    for i, f in enumerate(raw.get("faults", [])):
        where = f"{source}: faults[{i}]"
        kind = f.get("kind")
        if kind not in FAULT_KINDS:
            raise ConfigurationError(f"{where}: kind must be one of {', '.join(FAULT_KINDS)}")
        unknown = set(f) - {"kind", "share", "devices", "start_s", "duration_s", "severity"}
        if unknown:
            raise ConfigurationError(f"{where}: unknown keys {sorted(unknown)}")
        share = float(f.get("share", 0.0))
        devices = tuple(str(d) for d in f.get("devices", ()))
        if not devices and not 0 < share <= 1:
            raise ConfigurationError(f"{where}: give devices = [...] or 0 < share <= 1")
        severity = _pair(f.get("severity", 1.0), f"{where}: severity")
        if not 0 <= severity[0] <= severity[1] <= 1:
            raise ConfigurationError(f"{where}: severity must lie in [0, 1]")
        duration = _pair(f.get("duration_s", 10.0), f"{where}: duration_s")
        if duration[0] <= 0:
            raise ConfigurationError(f"{where}: duration_s must be positive")
        specs.append(
            FaultSpec(
                kind=kind,
                share=share,
                devices=devices,
                start_s=_pair(f.get("start_s", 0.0), f"{where}: start_s"),
                duration_s=duration,
                severity=severity,
            )
        )
    return Scenario(
        name=str(raw.get("name", source)),
        description=str(raw.get("description", "")),
        run=run,
        faults=tuple(specs),
    )


def load(name_or_path: str) -> Scenario:
    """A shipped scenario by name (``quiet``, ``mixed-faults``, ``load-test``) or a file."""
    path = Path(name_or_path)
    if not path.exists():
        shipped = SCENARIO_DIR / f"{name_or_path}.toml"
        if not shipped.exists():
            names = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.toml")))
            raise ConfigurationError(f"no scenario {name_or_path!r} (shipped: {names})")
        path = shipped
    return parse(path.read_text(encoding="utf-8"), str(path))


def write_ground_truth(path: Path, faults: Sequence[Fault]) -> None:
    """One JSON object per line: device, fault, start, end, severity and affected metrics."""
    with path.open("w", encoding="utf-8") as out:
        for f in sorted(faults, key=lambda f: (f.start_ms, f.device_id)):
            out.write(json.dumps(f.ground_truth()) + "\n")
