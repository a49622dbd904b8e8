"""Which parts a device will need, how sure we are, and why: every factor written down.

For each part that fits the device:

1. **Wear**: distance, time and operating hours since the part was last replaced (or since the
   device entered service), each against the part's interval; the clock nearest its end wins.
   Base confidence = the worn share of the interval, as a percentage (0.5 to 99.5).
2. **Due date**: what is left of that interval at the device's own pace (km per day from its
   twin, operating hours per day), or by the calendar.
3. **Adjustments**: the season and terrain factors that cover the part in the device's region,
   and the usage category (heavy users wear parts faster than intervals assume).
4. **Evidence**: an open anomaly the part explains (brake pads falling fast, battery voltage low,
   vibration rising at a bearing).
5. **Feedback**: how often service desks accepted or rejected this part when it was recommended
   before (see ``feedback_factor``).
6. **Business rules**, highest priority first.

Factors multiply the odds of the confidence (c / (100 - c)), not the confidence itself: a factor
of 1.3 takes 50 % to 56.5 % and 93 % to 94.6 %, so adjustments never push past 100 and never
flatten the ranking of parts that are all well worn. Business rules speak in points
(``add``, ``at_least``, ``at_most``) or scale the odds (``multiply``).
7. **Stock** at the device's dealer: in stock, low (reorder), out (shortfall), or unknown.

Recommendations below ``min_confidence`` are left out unless evidence raised them; the rest are
ranked by confidence, then by due date. Pure: the same facts and catalog give the same result.
"""

from __future__ import annotations

import operator
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import msgspec

from twin.maintenance.catalog import BusinessRule, Catalog, Part, Replacement

DAYS_PER_MONTH = 30.44


class RecommenderConfig(msgspec.Struct, frozen=True, kw_only=True):
    min_confidence: float = 40.0
    top_n: int = 5
    usage_factors: Mapping[str, float] = msgspec.field(
        default_factory=lambda: {"LOW": 0.85, "MEDIUM": 1.0, "HIGH": 1.15}
    )
    evidence_factor: float = 4.0
    """Odds factor for an anomaly the part explains."""
    feedback_prior: float = 2.0
    """Pseudo-counts of acceptance and of rejection before any feedback (Beta prior)."""
    feedback_limit: float = 4.0
    """The feedback factor stays within [1 / limit, limit]."""
    quiet_days: float = 30.0
    """A part a person accepted or rejected for a device is not recommended to it again for
    this long (it is booked, or the desk said no), unless an anomaly gives new evidence."""

    @property
    def version(self) -> str:
        return f"recs-{zlib.crc32(msgspec.json.encode(self)):08x}"


class DeviceFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What the recommender knows of one device (from its twin, registry and service history)."""

    device_id: str
    kind: str
    profile: str
    model: str = ""
    dealer: str = ""
    region: str = ""
    terrain: str = ""
    season: str = ""
    in_service_since: datetime | None = None
    odometer_km: float | None = None
    km_per_day: float | None = None
    usage_category: str = ""
    operating_hours: float | None = None
    hours_per_day: float | None = None
    replacements: Mapping[str, Replacement] = msgspec.field(default_factory=dict)
    """The latest replacement of each part code."""
    anomalies: tuple[tuple[str, str, str], ...] = ()
    """Open or recent anomalies as (detector, metric, kind)."""
    decided: Mapping[str, datetime] = msgspec.field(default_factory=dict)
    """When a person last accepted, rejected or modified a recommendation of each part."""


class Factor(msgspec.Struct, frozen=True, kw_only=True):
    """One step from base to final confidence: what it was, what it did, and why."""

    factor: str  # wear, season, terrain, usage, evidence, rule, cap
    value: float
    confidence: float
    """The confidence after this step."""
    why: str


class Recommendation(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    part: str
    name: str
    category: str
    rank: int
    base_confidence: float
    final_confidence: float
    wear: float
    due: date | None
    due_in_days: float | None
    cost: float
    critical: bool
    stock: str  # in_stock, low, out, unknown
    reorder: bool
    reasoning: tuple[Factor, ...]
    model_version: str


class _Wear(msgspec.Struct, frozen=True):
    fraction: float
    days_left: float | None
    clock: str


def _wear(part: Part, facts: DeviceFacts, now: datetime) -> _Wear | None:
    """The part's wear on the clock nearest its end (None: no clock can be read)."""
    last: Replacement | None = facts.replacements.get(part.code)
    clocks: list[_Wear] = []
    for interval, reading, at_last, pace, unit in (
        (part.interval_km, facts.odometer_km, last and last.odometer_km, facts.km_per_day, "km"),
        (part.interval_hours, facts.operating_hours, last and last.operating_hours,
         facts.hours_per_day, "h"),
    ):  # fmt: skip
        if interval and reading is not None:
            used = max(0.0, reading - (at_last or 0.0))
            days = (interval - used) / pace if pace and pace > 0 else None
            clocks.append(_Wear(used / interval, days, f"{used:,.0f} of {interval:,.0f} {unit}"))
    start = last.at if last else facts.in_service_since
    if part.interval_months and start is not None:
        months = max(0.0, (now - start).total_seconds() / 86400 / DAYS_PER_MONTH)
        days = (part.interval_months - months) * DAYS_PER_MONTH
        clocks.append(
            _Wear(
                months / part.interval_months,
                days,
                f"{months:.1f} of {part.interval_months:g} months",
            )
        )
    if not clocks:
        return None
    return max(clocks, key=lambda w: w.fraction)


def feedback_factor(accepted: int, rejected: int, config: RecommenderConfig) -> float:
    """The odds of acceptance, smoothed by a Beta prior: 1.0 with no feedback or as much
    acceptance as rejection; above 1 for parts people accept, below for parts they reject.
    Learns with every feedback (an online Beta-Binomial estimate per part)."""
    prior = config.feedback_prior
    rate = (accepted + prior) / (accepted + rejected + 2 * prior)
    odds = rate / (1 - rate)
    return min(max(odds, 1 / config.feedback_limit), config.feedback_limit)


def scale(confidence: float, factor: float) -> float:
    """Multiply the odds of a confidence (0-100) by ``factor``."""
    c = min(max(confidence, 0.5), 99.5)
    odds = c / (100 - c) * factor
    return round(100 * odds / (1 + odds), 1)


def _facts_of(facts: DeviceFacts, part: Part, wear: float, confidence: float) -> dict[str, Any]:
    return {
        "usage_category": facts.usage_category,
        "terrain": facts.terrain,
        "season": facts.season,
        "region": facts.region,
        "kind": facts.kind,
        "profile": facts.profile,
        "model": facts.model,
        "dealer": facts.dealer,
        "part": part.code,
        "category": part.category,
        "critical": part.critical,
        "wear": wear,
        "confidence": confidence,
        "cost": part.cost,
    }


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    "in": lambda value, want: value in want,
    "not_in": lambda value, want: value not in want,
}


def _holds(condition: Any, value: Any) -> bool:
    if not isinstance(condition, Mapping):
        return bool(value == condition)
    for op, want in condition.items():
        compare = _OPERATORS.get(op)
        try:
            if compare is None or not compare(value, want):
                return False
        except TypeError:
            return False
    return True


def rule_matches(rule: BusinessRule, facts: Mapping[str, Any]) -> bool:
    return all(key in facts and _holds(cond, facts[key]) for key, cond in rule.when.items())


def recommend(
    facts: DeviceFacts,
    catalog: Catalog,
    now: datetime,
    config: RecommenderConfig | None = None,
    feedback: Mapping[str, tuple[int, int]] | None = None,
) -> list[Recommendation]:
    """The device's ranked recommendations, each with its reasoning. ``feedback``: per part
    code, how many of its recommendations were accepted and rejected."""
    config = config or RecommenderConfig()
    version = config.version
    rules = [r for r in catalog.rules if r.in_force(now)]
    candidates: list[Recommendation] = []
    for listed in catalog.parts.values():
        if not listed.fits(facts.kind, facts.profile):
            continue
        part = catalog.part_for(listed, facts.model, facts.profile)
        wear = _wear(part, facts, now)
        if wear is None:
            continue
        steps: list[Factor] = []
        base = round(min(max(wear.fraction * 100, 0.5), 99.5), 1)
        confidence = base
        steps.append(
            Factor(
                factor="wear",
                value=round(wear.fraction, 3),
                confidence=confidence,
                why=f"{wear.clock} since "
                + ("the last replacement" if part.code in facts.replacements else "new"),
            )
        )
        confidence = _adjust(
            steps, confidence, "season", facts.season, part, facts, catalog.seasons, part.seasonal
        )
        confidence = _adjust(
            steps,
            confidence,
            "terrain",
            facts.terrain,
            part,
            facts,
            catalog.terrains,
            part.terrain_specific,
        )
        usage = config.usage_factors.get(facts.usage_category)
        if usage is not None and usage != 1.0:
            confidence = scale(confidence, usage)
            steps.append(
                Factor(
                    factor="usage",
                    value=usage,
                    confidence=confidence,
                    why=f"{facts.usage_category} usage",
                )
            )
        seen = [
            f"{d} {k} {m}"
            for d, m, k in facts.anomalies
            if any(e.matches(d, m, k) for e in part.evidence)
        ]
        if seen:
            confidence = scale(confidence, config.evidence_factor)
            steps.append(
                Factor(
                    factor="evidence",
                    value=config.evidence_factor,
                    confidence=confidence,
                    why="anomaly: " + ", ".join(sorted(set(seen))),
                )
            )
        votes = (feedback or {}).get(part.code)
        if votes is not None and (votes[0] or votes[1]):
            factor = round(feedback_factor(votes[0], votes[1], config), 3)
            confidence = scale(confidence, factor)
            steps.append(
                Factor(
                    factor="feedback",
                    value=factor,
                    confidence=confidence,
                    why=f"{votes[0]} accepted, {votes[1]} rejected before",
                )
            )
        decided = facts.decided.get(part.code)
        if decided is not None and not seen and now - decided < timedelta(days=config.quiet_days):
            continue
        excluded = False
        for rule in rules:
            if not rule_matches(rule, _facts_of(facts, part, wear.fraction, confidence)):
                continue
            confidence, excluded = _apply(rule, confidence)
            steps.append(
                Factor(
                    factor="rule",
                    value=float(rule.priority),
                    confidence=confidence,
                    why=f"{rule.name}: " + ", ".join(f"{k} {v}" for k, v in rule.then.items()),
                )
            )
            if excluded:
                break
        if excluded:
            continue
        if confidence > 100 or confidence < 0:
            confidence = min(100.0, max(0.0, confidence))
            steps.append(Factor(factor="cap", value=confidence, confidence=confidence,
                                why="confidence lies between 0 and 100"))  # fmt: skip
        if confidence < config.min_confidence and not seen:
            continue
        stock, reorder = _stock(catalog, part, facts.dealer)
        due_in = None if wear.days_left is None else round(wear.days_left, 1)
        due_day = None if due_in is None else (now + timedelta(days=due_in)).date()
        found = Recommendation(
            device_id=facts.device_id,
            part=part.code,
            name=part.name,
            category=part.category,
            rank=0,
            base_confidence=base,
            final_confidence=confidence,
            wear=round(wear.fraction, 3),
            due=due_day,
            due_in_days=due_in,
            cost=part.cost,
            critical=part.critical,
            stock=stock,
            reorder=reorder,
            reasoning=tuple(steps),
            model_version=version,
        )
        candidates.append(found)
    candidates.sort(
        key=lambda r: (
            -r.final_confidence,
            r.due_in_days if r.due_in_days is not None else float("inf"),
            r.part,
        )
    )
    return [msgspec.structs.replace(r, rank=i) for i, r in enumerate(candidates[: config.top_n], 1)]


def _adjust(
    steps: list[Factor],
    confidence: float,
    name: str,
    key: str,
    part: Part,
    facts: DeviceFacts,
    adjustments: Sequence[Any],
    flagged: bool,
) -> float:
    for adj in adjustments:
        if adj.key != key or not adj.applies(part, facts.region):
            continue
        if not (adj.parts or adj.categories) and not flagged:
            continue  # a blanket factor covers the parts flagged seasonal / terrain-specific
        confidence = scale(confidence, adj.factor)
        steps.append(
            Factor(
                factor=name,
                value=adj.factor,
                confidence=confidence,
                why=f"{key}"
                + (f" in {facts.region}" if adj.regions else "")
                + (f": {adj.note}" if adj.note else ""),
            )
        )
    return confidence


def _apply(rule: BusinessRule, confidence: float) -> tuple[float, bool]:
    then = rule.then
    if then.get("exclude"):
        return confidence, True
    if "multiply" in then:
        confidence = scale(confidence, float(then["multiply"]))
    if "add" in then:
        confidence = confidence + float(then["add"])
    if "at_least" in then:
        confidence = max(confidence, float(then["at_least"]))
    if "at_most" in then:
        confidence = min(confidence, float(then["at_most"]))
    return round(confidence, 1), False


def _stock(catalog: Catalog, part: Part, dealer: str) -> tuple[str, bool]:
    level = catalog.stock.get((part.code, dealer))
    if level is None:
        return "unknown", False
    if level.on_hand <= 0:
        return "out", True
    if level.on_hand <= level.reorder_point:
        return "low", True
    return "in_stock", False
