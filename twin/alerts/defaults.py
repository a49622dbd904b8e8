"""Alert rules shipped with the engine (stored in ``alert_rules`` at start, editable there)."""

from __future__ import annotations

from twin.alerts.rules import Level, Rule

VEHICLES = ("passenger_car", "truck")
MACHINES = ("pump", "compressor", "cnc_machine", "conveyor")

BUILTIN_RULES: tuple[Rule, ...] = (
    Rule(
        id="vehicle-overheating",
        type="threshold",
        name="Engine overheating",
        profiles=VEHICLES,
        metric="coolant_temp_c",
        levels_from_profile=True,  # 105 °C major, 115 °C critical on the shipped profiles
        clear_margin=5.0,
        sustain_s=30,
        clear_s=60,
        severity="major",
    ),
    Rule(
        id="machine-overheating",
        type="threshold",
        name="Machine overheating",
        profiles=MACHINES,
        metric="temperature_c",
        levels_from_profile=True,  # each machine type's own limits (pump 80 / 95 °C, ...)
        clear_margin=5.0,
        sustain_s=30,
        clear_s=60,
        severity="major",
    ),
    Rule(
        id="battery-low",
        type="threshold",
        name="Battery voltage low",
        profiles=("passenger_car",),
        metric="battery_v",
        above=False,
        levels=(Level(11.9, "warning"), Level(11.2, "major")),
        clear=12.2,
        sustain_s=60,
        clear_s=120,
    ),
    Rule(
        id="fuel-drain-parked",
        type="rate",
        name="Fuel falling while parked",
        profiles=VEHICLES,
        metric="fuel_level_pct",
        per_min=-5.0,
        when_metric="speed_kmh",
        when_below=1.0,
        severity="major",
        clear_s=300,
    ),
    Rule(
        id="critical-anomaly",
        type="anomaly",
        name="Critical anomaly",
        min_severity="critical",
        severity="major",
        clear_s=300,
    ),
    Rule(
        id="repeated-anomalies",
        type="anomaly",
        name="Repeated anomalies",
        count=3,
        window_s=600,
        severity="warning",
        clear_s=600,
    ),
    Rule(
        id="no-data",
        type="no_data",
        name="No data",
        silence_s=300,
        severity="warning",
        clear_s=0,
    ),
    Rule(
        id="fault-codes",
        type="dtc",
        name="Fault code",
        profiles=VEHICLES,
        severity="warning",
        families={
            "P0": "warning",
            "P02": "major",
            "P0217": "critical",
            "P03": "major",
            "C": "warning",
            "B": "info",
            "U": "warning",
        },
        clear_s=3600,
    ),
)
