"""Injected faults with ground truth: what happened to which device, when, and to which metrics.

A ``Fault`` is planned ahead (device, kind, start and end in device time, severity) and applied
reading by reading by a ``FaultInjector``. Some faults change what a sensor reports (spike,
stuck, overheating, GPS jump, cavitation); others change the device itself and so persist after
the fault window (fuel leak, battery degradation, brake wear) or make it silent (dropout).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from simulators.fleet import Device, Vehicle

VEHICLE_ONLY = {"gps_jump", "fuel_leak", "battery_degradation", "brake_wear"}
MACHINE_ONLY = {"bearing_wear"}
PUMP_ONLY = {"cavitation", "impeller_wear"}
FAULT_KINDS = (
    "overheating",
    "bearing_wear",
    "spike",
    "sensor_stuck",
    "dropout",
    "gps_jump",
    "fuel_leak",
    "battery_degradation",
    "brake_wear",
    "cavitation",
    "impeller_wear",
)
_SENSOR_METRICS = {
    "coolant_temp_c", "battery_v", "oil_pressure_kpa",  # vehicles
    "temperature_c", "vibration_mm_s", "pressure_bar", "power_kw", "current_a", "flow_rate_m3h",
}  # fmt: skip
"""Metrics a spike or a stuck sensor is drawn on: measured conditions that always move a
little, so a frozen value shows (a stuck odometer or brake-pad gauge would look healthy)."""


def eligible(kind: str, device: Device) -> bool:
    if kind in VEHICLE_ONLY:
        return device.kind == "vehicle"
    if kind in MACHINE_ONLY:
        return device.kind == "machine"
    if kind in PUMP_ONLY:
        return device.profile == "pump"
    return True


def affected_metrics(kind: str, device: Device, pick: str | None = None) -> tuple[str, ...]:
    """The metrics a fault of ``kind`` drives on ``device`` (``pick`` for spike/stuck)."""
    vehicle = device.kind == "vehicle"
    return {
        "overheating": ("coolant_temp_c",) if vehicle else ("temperature_c",),
        "bearing_wear": ("vibration_mm_s",),
        "spike": (pick or "",),
        "sensor_stuck": (pick or "",),
        "dropout": (),
        "gps_jump": ("lat", "lon"),
        "fuel_leak": ("fuel_level_pct",),
        "battery_degradation": ("battery_v",),
        "brake_wear": ("brake_pad_mm",),
        "cavitation": ("pressure_bar", "flow_rate_m3h", "vibration_mm_s"),
        "impeller_wear": ("flow_rate_m3h",),
    }[kind]


def candidate_metrics(device: Device, sample: dict[str, float]) -> list[str]:
    return sorted(m for m in sample if m in _SENSOR_METRICS)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Fault:
    device_id: str
    kind: str
    start_ms: int
    end_ms: int
    severity: float
    metrics: tuple[str, ...]

    def active(self, ts_ms: int) -> bool:
        return self.start_ms <= ts_ms < self.end_ms

    def ground_truth(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "fault": self.kind,
            "start": _iso(self.start_ms),
            "end": _iso(self.end_ms),
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "severity": round(self.severity, 3),
            "metrics": list(self.metrics),
        }


@dataclass
class FaultInjector:
    """Applies one device's faults to its readings, in device time."""

    faults: list[Fault]
    _stuck: dict[int, float] = field(default_factory=dict)
    _jump: dict[int, tuple[float, float]] = field(default_factory=dict)

    def apply(self, device: Device, values: dict[str, float], ts_ms: int, dt_s: float) -> bool:
        """Change ``values`` in place; False when the device is silent (dropout)."""
        for i, f in enumerate(self.faults):
            if not f.active(ts_ms):
                continue
            progress = (ts_ms - f.start_ms) / max(1, f.end_ms - f.start_ms)
            s = f.severity
            kind = f.kind
            if kind == "dropout":
                return False
            if kind == "overheating":
                metric = f.metrics[0]
                if metric in values:  # ramps up over the first fifth, then holds
                    values[metric] = round(values[metric] + s * 35 * min(1.0, progress * 5), 2)
            elif kind == "bearing_wear":
                if values.get("vibration_mm_s", 0) > 0:  # grows while running
                    values["vibration_mm_s"] = round(values["vibration_mm_s"] + s * 8 * progress, 3)
            elif kind == "spike":
                metric = f.metrics[0]
                if metric in values:
                    v = values[metric]
                    values[metric] = round(v * (1 + 3 * s) + 10 * s if v >= 0 else v * 4, 3)
            elif kind == "sensor_stuck":
                metric = f.metrics[0]
                if metric in values:
                    values[metric] = self._stuck.setdefault(i, values[metric])
            elif kind == "gps_jump":
                if "lat" in values:
                    dlat, dlon = self._jump.setdefault(i, (0.5 + 1.5 * s, -(0.5 + 1.5 * s)))
                    values["lat"] = round(max(-89.9, min(89.9, values["lat"] + dlat)), 6)
                    values["lon"] = round(((values["lon"] + dlon + 180) % 360) - 180, 6)
            elif kind == "fuel_leak":
                if isinstance(device, Vehicle):
                    device.fuel = max(0.0, device.fuel - s * 0.4 * dt_s)
                    values["fuel_level_pct"] = round(device.fuel, 2)
            elif kind == "battery_degradation":
                if isinstance(device, Vehicle):
                    health = 1.0 - 0.25 * s * progress
                    device.battery_health = min(device.battery_health, health)
            elif kind == "brake_wear":  # a dragging caliper: the pads wear whenever it rolls
                if isinstance(device, Vehicle) and values.get("speed_kmh", 0) > 0:
                    device.brake_pad = max(0.5, device.brake_pad - s * 0.004 * dt_s)
                    values["brake_pad_mm"] = round(device.brake_pad, 3)
            elif kind == "cavitation":
                phase = math.sin(2 * math.pi * ts_ms / 2000.0)
                for metric, amp in (("pressure_bar", 0.35), ("flow_rate_m3h", 0.3)):
                    if metric in values:
                        values[metric] = round(values[metric] * (1 + amp * s * phase), 3)
                if "vibration_mm_s" in values:
                    values["vibration_mm_s"] = round(values["vibration_mm_s"] * (1 + 1.5 * s), 3)
            elif kind == "impeller_wear" and "flow_rate_m3h" in values:
                loss = 0.25 * s * min(1.0, progress * 3)  # less flow for the same power
                values["flow_rate_m3h"] = round(values["flow_rate_m3h"] * (1 - loss), 3)
        return True
