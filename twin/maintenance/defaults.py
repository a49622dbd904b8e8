"""The reference data shipped with the engine (``twin catalog load`` stores it).

Intervals and costs are typical workshop figures: passenger-car and truck parts by distance and
time, machine parts by operating hours and time. Dealers ``DLR001`` to ``DLR039`` are those the
simulated fleet names; their stock is spread deterministically so that some parts run low or out.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

from twin.maintenance.catalog import (
    Adjustment,
    BusinessRule,
    Dealer,
    Evidence,
    Part,
    Schedule,
    Stock,
)

CARS, TRUCKS = ("passenger_car",), ("truck",)
VEHICLES = ("vehicle",)
MACHINES = ("machine",)


def _p(code: str, name: str, category: str, cost: float, **kw: object) -> Part:
    return Part(code=code, name=name, category=category, cost=cost, **kw)  # type: ignore[arg-type]


BRAKE_WEAR = (Evidence("brake_pad_mm", ("falling", "low")),)
OVERHEAT = (Evidence("coolant_temp_c", ("high", "rising")),)
BATTERY = (Evidence("battery_v", ("low", "falling")),)
VIBRATION = (Evidence("vibration_mm_s", ("high", "rising")),)
MACHINE_HEAT = (Evidence("temperature_c", ("high", "rising")),)
PRESSURE = (Evidence("pressure_bar", ("low", "falling", "high")),)
OIL = (Evidence("oil_pressure_kpa", ("low", "falling")),)

PARTS: tuple[Part, ...] = (
    # brakes
    _p("BRK-PAD-F", "Front brake pads", "Brakes", 4200, interval_km=30_000, interval_months=24,
       critical=True, terrain_specific=True, evidence=BRAKE_WEAR, oem_number="0986494"),
    _p("BRK-PAD-R", "Rear brake pads", "Brakes", 3600, interval_km=45_000, interval_months=36,
       critical=True, terrain_specific=True, evidence=BRAKE_WEAR),
    _p("BRK-DISC-F", "Front brake discs", "Brakes", 9800, interval_km=70_000,
       interval_months=60, critical=True, terrain_specific=True),
    _p("BRK-FLUID", "Brake fluid", "Brakes", 1500, interval_months=24, critical=True,
       seasonal=True),
    _p("TRK-BRK-LINING", "Truck brake linings", "Brakes", 18_000, interval_km=80_000,
       interval_months=24, critical=True, terrain_specific=True, profiles=TRUCKS,
       evidence=BRAKE_WEAR),
    # engine and lubrication
    _p("ENG-OIL", "Engine oil and filter service", "Lubrication", 3200, interval_km=10_000,
       interval_months=12, profiles=CARS, evidence=OIL),
    _p("TRK-ENG-OIL", "Truck engine oil service", "Lubrication", 11_000, interval_km=40_000,
       interval_months=12, profiles=TRUCKS, evidence=OIL),
    _p("ENG-SPARK", "Spark plugs", "Engine", 2400, interval_km=40_000, interval_months=48,
       profiles=CARS),
    _p("ENG-TIMING", "Timing belt kit", "Belts", 14_500, interval_km=100_000,
       interval_months=72, critical=True, profiles=CARS),
    _p("ENG-SERP", "Serpentine belt", "Belts", 2100, interval_km=80_000, interval_months=60),
    _p("ENG-INJ-CLEAN", "Injector cleaning", "Engine", 2800, interval_km=60_000,
       terrain_specific=True),
    # cooling
    _p("COOL-FLUID", "Coolant", "Cooling", 1800, interval_km=60_000, interval_months=36,
       seasonal=True, evidence=OVERHEAT),
    _p("COOL-THERM", "Thermostat", "Cooling", 2600, interval_km=120_000, interval_months=96,
       evidence=OVERHEAT),
    _p("COOL-PUMP", "Water pump", "Cooling", 7400, interval_km=120_000, interval_months=96,
       critical=True, evidence=OVERHEAT),
    # filters
    _p("FLT-AIR", "Engine air filter", "Filters", 900, interval_km=20_000, interval_months=24,
       terrain_specific=True, seasonal=True),
    _p("FLT-CABIN", "Cabin air filter", "Filters", 700, interval_km=15_000, interval_months=12,
       seasonal=True),
    _p("FLT-FUEL", "Fuel filter", "Filters", 1300, interval_km=40_000, interval_months=36),
    _p("TRK-FLT-DPF", "Diesel particulate filter clean", "Filters", 9500, interval_km=150_000,
       profiles=TRUCKS),
    # electrical
    _p("ELC-BATT", "12 V battery", "Electrical", 6500, interval_months=48, critical=True,
       seasonal=True, evidence=BATTERY),
    _p("ELC-WIPER", "Wiper blades", "Electrical", 800, interval_months=12, seasonal=True),
    _p("ELC-BULBS", "Headlamp bulbs", "Electrical", 600, interval_months=36),
    _p("ELC-ALT-BELT", "Alternator check", "Electrical", 1200, interval_km=90_000,
       evidence=BATTERY),
    # tyres and suspension
    _p("TYR-SET", "Tyres (set of four)", "Tyres", 24_000, interval_km=45_000,
       interval_months=60, critical=True, terrain_specific=True, seasonal=True, profiles=CARS),
    _p("TYR-ROTATE", "Tyre rotation and balance", "Tyres", 600, interval_km=10_000,
       terrain_specific=True),
    _p("TRK-TYR", "Truck tyres (axle)", "Tyres", 42_000, interval_km=120_000,
       interval_months=48, critical=True, terrain_specific=True, profiles=TRUCKS),
    _p("SUS-SHOCK", "Shock absorbers", "Suspension", 11_000, interval_km=80_000,
       terrain_specific=True),
    _p("SUS-ALIGN", "Wheel alignment", "Suspension", 900, interval_km=20_000,
       terrain_specific=True),
    # machines
    _p("MCH-BRG-MOTOR", "Motor bearings", "Bearings", 8500, interval_hours=20_000,
       interval_months=48, critical=True, kinds=MACHINES, evidence=VIBRATION),
    _p("MCH-BRG-PUMP", "Pump bearings", "Bearings", 6200, interval_hours=16_000,
       critical=True, kinds=MACHINES, profiles=("pump",), evidence=VIBRATION),
    _p("MCH-SEAL-MECH", "Mechanical seal", "Seals", 5400, interval_hours=8_000,
       interval_months=24, critical=True, kinds=MACHINES, profiles=("pump",), evidence=PRESSURE),
    _p("MCH-IMPELLER", "Impeller inspection", "Hydraulics", 3000, interval_hours=10_000,
       kinds=MACHINES, profiles=("pump",), evidence=PRESSURE),
    _p("MCH-CMP-VALVE", "Compressor valve kit", "Seals", 7800, interval_hours=6_000,
       kinds=MACHINES, profiles=("compressor",), evidence=PRESSURE),
    _p("MCH-CMP-SEP", "Air/oil separator", "Filters", 4600, interval_hours=4_000,
       kinds=MACHINES, profiles=("compressor",), evidence=MACHINE_HEAT),
    _p("MCH-CMP-OIL", "Compressor oil", "Lubrication", 2200, interval_hours=2_000,
       interval_months=12, kinds=MACHINES, profiles=("compressor",), evidence=MACHINE_HEAT),
    _p("MCH-FLT-AIR", "Intake air filter", "Filters", 900, interval_hours=2_000,
       interval_months=6, kinds=MACHINES, profiles=("compressor",), seasonal=True),
    _p("MCH-SPINDLE", "Spindle bearing service", "Bearings", 16_000, interval_hours=12_000,
       critical=True, kinds=MACHINES, profiles=("cnc_machine",), evidence=VIBRATION),
    _p("MCH-WAY-OIL", "Way lubrication oil", "Lubrication", 800, interval_hours=500,
       interval_months=3, kinds=MACHINES, profiles=("cnc_machine",)),
    _p("MCH-COOLANT", "Machining coolant change", "Cooling", 1400, interval_hours=1_500,
       interval_months=6, kinds=MACHINES, profiles=("cnc_machine",), evidence=MACHINE_HEAT),
    _p("MCH-BELT", "Drive belt", "Belts", 2600, interval_hours=10_000, interval_months=36,
       kinds=MACHINES, profiles=("conveyor",), evidence=VIBRATION),
    _p("MCH-ROLLER-BRG", "Roller bearings", "Bearings", 3900, interval_hours=15_000,
       kinds=MACHINES, profiles=("conveyor",), evidence=VIBRATION),
    _p("MCH-GEARBOX-OIL", "Gearbox oil", "Lubrication", 1900, interval_hours=5_000,
       interval_months=12, kinds=MACHINES, evidence=MACHINE_HEAT),
    _p("MCH-MOTOR-INSP", "Motor insulation test", "Electrical", 1500, interval_months=12,
       kinds=MACHINES, seasonal=True, evidence=MACHINE_HEAT),
)  # fmt: skip

REGIONS = ("NORTH", "SOUTH", "EAST", "WEST")
CITIES = {"NORTH": "Delhi", "SOUTH": "Bangalore", "EAST": "Kolkata", "WEST": "Mumbai"}

DEALERS: tuple[Dealer, ...] = tuple(
    Dealer(
        code=f"DLR{n:03d}",
        name=f"{CITIES[REGIONS[n % 4]]} Motors {n:03d}",
        region=REGIONS[n % 4],
        city=CITIES[REGIONS[n % 4]],
    )
    for n in range(1, 40)
)


def _stock() -> tuple[Stock, ...]:
    levels = []
    for dealer in DEALERS:
        for part in PARTS:
            spread = zlib.crc32(f"{dealer.code}:{part.code}".encode()) % 100
            on_hand = 0 if spread < 6 else (2 if spread < 20 else 4 + spread % 12)
            levels.append(
                Stock(
                    part=part.code, dealer=dealer.code, on_hand=on_hand, minimum=2, reorder_point=3
                )
            )
    return tuple(levels)


STOCK = _stock()

SEASONS: tuple[Adjustment, ...] = (
    Adjustment(
        key="WINTER", factor=1.3, categories=("Electrical",), note="cold starts load the battery"
    ),
    Adjustment(
        key="WINTER",
        factor=1.15,
        parts=("COOL-FLUID", "TYR-SET"),
        note="antifreeze and winter grip",
    ),
    Adjustment(
        key="MONSOON",
        factor=1.25,
        parts=("ELC-WIPER", "BRK-FLUID", "TYR-SET", "FLT-CABIN"),
        note="wet roads and humidity",
    ),
    Adjustment(
        key="SUMMER",
        factor=1.2,
        parts=("COOL-FLUID", "FLT-AIR", "MCH-FLT-AIR", "MCH-MOTOR-INSP"),
        note="heat and dust",
    ),
    Adjustment(
        key="SUMMER", factor=1.1, parts=("FLT-AIR",), regions=("NORTH", "WEST"), note="dust storms"
    ),
)

TERRAINS: tuple[Adjustment, ...] = (
    Adjustment(key="HILLY", factor=1.3, categories=("Brakes",), note="long descents wear brakes"),
    Adjustment(
        key="HILLY",
        factor=1.15,
        categories=("Suspension", "Tyres"),
        note="rough roads and gradients",
    ),
    Adjustment(key="URBAN", factor=1.15, categories=("Brakes",), note="stop-and-go traffic"),
    Adjustment(
        key="URBAN", factor=1.1, parts=("ENG-INJ-CLEAN", "FLT-AIR"), note="short trips and idling"
    ),
    Adjustment(
        key="HIGHWAY", factor=0.9, categories=("Brakes",), note="little braking at steady speed"
    ),
    Adjustment(key="HIGHWAY", factor=1.1, categories=("Tyres",), note="sustained speed"),
)

RULES: tuple[BusinessRule, ...] = (
    BusinessRule(
        name="Critical parts past 90 % of their interval",
        when={"critical": True, "wear": {">=": 0.9}},
        then={"at_least": 85},
        priority=100,
    ),
    BusinessRule(
        name="High usage wears brakes and tyres sooner",
        when={"usage_category": "HIGH", "category": {"in": ["Brakes", "Tyres"]}},
        then={"multiply": 1.5},
        priority=50,
    ),
    BusinessRule(
        name="Monsoon brake check",
        when={"season": "MONSOON", "category": "Brakes"},
        then={"multiply": 1.2},
        priority=40,
        effective_from=datetime(2025, 1, 1, tzinfo=UTC),
    ),
    BusinessRule(
        name="Cheap items only when nearly due",
        when={"cost": {"<": 1000}, "wear": {"<": 0.7}},
        then={"at_most": 39},
        priority=10,
    ),
)

SCHEDULES: tuple[Schedule, ...] = (
    # the trucks' makers ask for longer oil intervals, the compact car for shorter ones
    Schedule(applies_to="Actros", part="TRK-ENG-OIL", interval_km=60_000, interval_months=12),
    Schedule(applies_to="FH16", part="TRK-ENG-OIL", interval_km=50_000, interval_months=12),
    Schedule(applies_to="Swift", part="ENG-OIL", interval_km=7_500, interval_months=6),
    # compressors run hot: gearbox oil more often than the generic interval
    Schedule(
        applies_to="compressor", part="MCH-GEARBOX-OIL", interval_hours=3_000, interval_months=12
    ),
)
