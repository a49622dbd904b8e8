"""Maintenance and parts recommendations: ranking and reasoning, factor by factor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from twin.errors import ConfigurationError
from twin.maintenance import defaults
from twin.maintenance.catalog import (
    Adjustment,
    BusinessRule,
    Catalog,
    Evidence,
    Part,
    Replacement,
    Stock,
)
from twin.maintenance.recommend import DeviceFacts, RecommenderConfig, recommend, scale

NOW = datetime(2026, 1, 15, tzinfo=UTC)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def shipped() -> Catalog:
    return Catalog(
        defaults.PARTS,
        defaults.DEALERS,
        defaults.STOCK,
        defaults.SEASONS,
        defaults.TERRAINS,
        defaults.RULES,
        defaults.SCHEDULES,
    )


def fixture_car(**changes: object) -> DeviceFacts:
    """A Swift in the hills in winter, 80 km a day (HIGH), serviced at 50,000 km five months
    ago (oil, filters, wipers, rotation, alignment) and at 45,000 km eleven months ago (rear
    pads, tyres, spark plugs...); front pads last changed at 30,000 km."""
    at_50k = {"ENG-OIL", "FLT-AIR", "FLT-CABIN", "ELC-WIPER", "TYR-ROTATE", "SUS-ALIGN"}
    at_45k = {
        "BRK-PAD-R", "BRK-FLUID", "TYR-SET", "ENG-SPARK", "FLT-FUEL", "COOL-FLUID",
        "ELC-BATT", "ELC-BULBS", "ENG-INJ-CLEAN",
    }  # fmt: skip
    history = {p: Replacement(part=p, at=ago(150), odometer_km=50_000) for p in at_50k}
    history |= {p: Replacement(part=p, at=ago(335), odometer_km=45_000) for p in at_45k}
    history["BRK-PAD-F"] = Replacement(part="BRK-PAD-F", at=ago(420), odometer_km=30_000)
    facts = DeviceFacts(
        device_id="veh-1",
        kind="vehicle",
        profile="passenger_car",
        model="Swift",
        dealer="DLR004",
        region="NORTH",
        terrain="HILLY",
        season="WINTER",
        in_service_since=ago(3 * 365),
        odometer_km=58_000,
        km_per_day=80,
        usage_category="HIGH",
        replacements=history,
    )
    return DeviceFacts(**{**{f: getattr(facts, f) for f in facts.__struct_fields__}, **changes})


def steps(rec) -> list[tuple[str, float, float]]:  # type: ignore[no-untyped-def]
    return [(f.factor, f.value, f.confidence) for f in rec.reasoning]


def test_fixture_car_is_ranked_and_every_factor_explained():
    recs = recommend(fixture_car(), shipped(), NOW)
    # the Swift's schedule wants oil every 7,500 km: overdue; front pads nearly due; discs and
    # shocks never changed; tyre rotation due with the pads
    ranking = ["ENG-OIL", "BRK-PAD-F", "BRK-DISC-F", "TYR-ROTATE", "SUS-SHOCK"]
    assert [r.part for r in recs] == ranking
    oil, front = recs[0], recs[1]
    assert oil.reasoning[0].why == "8,000 of 7,500 km since the last replacement"
    assert oil.due_in_days == -6.2 and oil.due == (NOW - timedelta(days=6.2)).date()
    # 28,000 of 30,000 km: 93.3 %; hills x1.3, heavy use x1.15 (odds); a critical part past 90 %
    # is at least 85; high usage on brakes x1.5
    base = 93.3
    hills = scale(base, 1.3)
    heavy = scale(hills, 1.15)
    rule = scale(heavy, 1.5)
    assert steps(front) == [
        ("wear", 0.933, base),
        ("terrain", 1.3, hills),
        ("usage", 1.15, heavy),
        ("rule", 100.0, heavy),
        ("rule", 50.0, rule),
    ]
    assert front.reasoning[0].why == "28,000 of 30,000 km since the last replacement"
    assert front.reasoning[1].why == "HILLY: long descents wear brakes"
    assert (front.base_confidence, front.final_confidence) == (base, rule)
    assert front.due == (NOW + timedelta(days=25)).date()  # 2,000 km left at 80 km a day
    assert front.stock == "in_stock" and not front.reorder and front.cost == 4200
    assert front.model_version == RecommenderConfig().version
    discs = recs[2]
    assert discs.reasoning[0].why == "58,000 of 70,000 km since new"
    assert [f.factor for f in discs.reasoning] == ["wear", "terrain", "usage", "rule"]
    golf = {r.part: r for r in recommend(fixture_car(model="Golf"), shipped(), NOW)}
    assert golf["ENG-OIL"].reasoning[0].why == "8,000 of 10,000 km since the last replacement"
    alternator = next(
        r
        for r in recommend(fixture_car(), shipped(), NOW, RecommenderConfig(top_n=10))
        if r.part == "ELC-ALT-BELT"
    )
    assert alternator.reasoning[1].why == "WINTER: cold starts load the battery"


def test_brake_wear_anomaly_raises_the_brake_parts():
    calm = {r.part: r for r in recommend(fixture_car(), shipped(), NOW)}
    worn = recommend(fixture_car(anomalies=(("drift", "brake_pad_mm", "falling"),)), shipped(), NOW)
    by_part = {r.part: r for r in worn}
    assert "BRK-PAD-R" in by_part and "BRK-PAD-R" not in calm  # 13,000 of 45,000 km alone
    evidence = next(f for f in by_part["BRK-PAD-R"].reasoning if f.factor == "evidence")
    assert evidence.value == 4.0 and "brake_pad_mm" in evidence.why
    assert by_part["BRK-PAD-F"].final_confidence > calm["BRK-PAD-F"].final_confidence
    assert by_part["BRK-PAD-R"].rank <= 5  # from below the cut to the top five


def test_a_service_clears_the_recommendation_it_satisfied():
    before = [r.part for r in recommend(fixture_car(), shipped(), NOW)]
    car = fixture_car()
    serviced = dict(car.replacements)
    serviced["BRK-PAD-F"] = Replacement(part="BRK-PAD-F", at=NOW, odometer_km=58_000)
    after = [r.part for r in recommend(fixture_car(replacements=serviced), shipped(), NOW)]
    assert "BRK-PAD-F" in before and "BRK-PAD-F" not in after


def test_stock_shortfall_and_reorder_at_the_devices_dealer():
    catalog = shipped()
    catalog.stock[("BRK-PAD-F", "DLR004")] = Stock(part="BRK-PAD-F", dealer="DLR004", on_hand=0)
    catalog.stock[("TYR-ROTATE", "DLR004")] = Stock(
        part="TYR-ROTATE", dealer="DLR004", on_hand=2, reorder_point=3
    )
    by_part = {r.part: r for r in recommend(fixture_car(), catalog, NOW)}
    assert (by_part["BRK-PAD-F"].stock, by_part["BRK-PAD-F"].reorder) == ("out", True)
    assert (by_part["TYR-ROTATE"].stock, by_part["TYR-ROTATE"].reorder) == ("low", True)
    unknown = recommend(fixture_car(dealer="DLR999"), catalog, NOW)
    assert {r.stock for r in unknown} == {"unknown"}


def test_business_rules_apply_by_priority_and_can_exclude():
    part = Part(code="X", name="Widget", category="Engine", cost=100, interval_km=10_000)
    facts = fixture_car(replacements={}, odometer_km=6_000, usage_category="MEDIUM")
    rules = [
        BusinessRule(name="floor", when={"part": "X"}, then={"at_least": 70}, priority=1),
        BusinessRule(name="cap", when={"wear": {">=": 0.5}}, then={"at_most": 65}, priority=9),
    ]
    (rec,) = recommend(facts, Catalog([part], rules=rules), NOW)
    assert [(f.why.split(":")[0], f.confidence) for f in rec.reasoning[1:]] == [
        ("cap", 60.0),  # higher priority first: 60 is under the cap already
        ("floor", 70.0),
    ]
    gone = BusinessRule(name="not this model", when={"model": {"in": ["Swift"]}},
                        then={"exclude": True})  # fmt: skip
    assert recommend(facts, Catalog([part], rules=[gone]), NOW) == []
    expired = BusinessRule(name="old", when={}, then={"exclude": True},
                           effective_until=NOW - timedelta(days=1))  # fmt: skip
    assert len(recommend(facts, Catalog([part], rules=[expired]), NOW)) == 1


def test_machines_wear_by_operating_hours():
    pump = DeviceFacts(
        device_id="mac-1",
        kind="machine",
        profile="pump",
        dealer="DLR001",
        in_service_since=ago(400),
        operating_hours=7_600,
        hours_per_day=20,
        anomalies=(("level", "vibration_mm_s", "high"),),
    )
    recs = recommend(pump, shipped(), NOW)
    by_part = {r.part: r for r in recs}
    seal = by_part["MCH-SEAL-MECH"]  # 7,600 of 8,000 h: due in 20 days at 20 h a day
    assert seal.reasoning[0].why == "7,600 of 8,000 h since new" and seal.due_in_days == 20.0
    bearing = by_part["MCH-BRG-PUMP"]  # only 47.5 % worn, but the vibration says otherwise
    assert [f.factor for f in bearing.reasoning][:2] == ["wear", "evidence"]
    assert all(r.part.startswith("MCH-") for r in recs)  # no car parts on a pump


def test_odds_scaling_stays_within_bounds_and_keeps_order():
    assert scale(50.0, 1.0) == 50.0
    assert 99.0 < scale(99.0, 10.0) < 100.0
    assert scale(93.0, 1.3) < scale(95.0, 1.3)
    assert scale(60.0, 0.5) == pytest.approx(42.9, abs=0.1)


def test_reference_data_says_what_is_wrong_with_it():
    with pytest.raises(ConfigurationError, match="needs interval"):
        Catalog([Part(code="Y", name="y", category="Engine")])
    with pytest.raises(ConfigurationError, match="category must be one of"):
        Catalog([Part(code="Y", name="y", category="Toys", interval_km=1)])
    with pytest.raises(ConfigurationError, match="factor must be positive"):
        Catalog([], seasons=[Adjustment(key="WINTER", factor=0)])
    with pytest.raises(ConfigurationError, match="unknown actions"):
        Catalog([], rules=[BusinessRule(name="r", when={}, then={"explode": 1})])
    assert Evidence("brake_pad_mm", ("falling",)).matches("drift", "brake_pad_mm", "falling")
    catalog = shipped()
    assert len(catalog.parts) >= 40 and len(catalog.dealers) == 39
    categories = {p.category for p in catalog.parts.values()}
    assert {"Brakes", "Engine", "Electrical", "Filters", "Tyres", "Bearings", "Seals"} <= categories


def test_feedback_changes_a_later_ranking():
    car = fixture_car()
    before = [r.part for r in recommend(car, shipped(), NOW)]
    assert before.index("BRK-DISC-F") < before.index("TYR-ROTATE")
    # service desks keep rejecting disc replacements and accepting tyre rotations
    votes = {"BRK-DISC-F": (0, 6), "TYR-ROTATE": (5, 0)}
    after = recommend(car, shipped(), NOW, RecommenderConfig(top_n=10), feedback=votes)
    ranking = [r.part for r in after]
    assert ranking.index("TYR-ROTATE") < ranking.index("BRK-DISC-F")
    discs = next(r for r in after if r.part == "BRK-DISC-F")
    step = next(f for f in discs.reasoning if f.factor == "feedback")
    # acceptance rate (0 + 2) / (6 + 4) = 0.2: odds 0.25
    assert step.why == "0 accepted, 6 rejected before" and step.value == 0.25


def test_feedback_factor_is_neutral_without_votes_and_bounded():
    config = RecommenderConfig()
    from twin.maintenance.recommend import feedback_factor

    assert feedback_factor(0, 0, config) == 1.0 == feedback_factor(3, 3, config)
    assert feedback_factor(100, 0, config) == 4.0 and feedback_factor(0, 100, config) == 0.25
    assert feedback_factor(2, 0, config) > 1 > feedback_factor(0, 2, config)


def test_a_part_people_decided_on_stays_quiet_unless_new_evidence():
    decided = {"BRK-PAD-F": NOW - timedelta(days=3), "TYR-ROTATE": NOW - timedelta(days=45)}
    parts = [r.part for r in recommend(fixture_car(decided=decided), shipped(), NOW)]
    assert "BRK-PAD-F" not in parts  # booked or refused three days ago
    assert "TYR-ROTATE" in parts  # 45 days ago: recommended again
    worn = fixture_car(decided=decided, anomalies=(("drift", "brake_pad_mm", "falling"),))
    assert "BRK-PAD-F" in [r.part for r in recommend(worn, shipped(), NOW)]  # new evidence
