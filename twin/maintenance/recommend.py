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

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from twin.maintenance.business_rules import apply_rule, rule_facts, rule_matches, scale
from twin.maintenance.catalog import BusinessRule, Catalog, Part
from twin.maintenance.records import DeviceFacts, Factor, Recommendation, RecommenderConfig
from twin.maintenance.wear import Wear, wear_of

__all__ = [
    "DeviceFacts",
    "Factor",
    "Recommendation",
    "RecommenderConfig",
    "feedback_factor",
    "recommend",
    "scale",
]


def feedback_factor(accepted: int, rejected: int, config: RecommenderConfig) -> float:
    """The odds of acceptance, smoothed by a Beta prior: 1.0 with no feedback or as much
    acceptance as rejection; above 1 for parts people accept, below for parts they reject.
    Learns with every feedback (an online Beta-Binomial estimate per part)."""
    prior = config.feedback_prior
    rate = (accepted + prior) / (accepted + rejected + 2 * prior)
    odds = rate / (1 - rate)
    return min(max(odds, 1 / config.feedback_limit), config.feedback_limit)


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
    rules = [r for r in catalog.rules if r.in_force(now)]
    candidates: list[Recommendation] = []
    for listed in catalog.parts.values():
        if not listed.fits(facts.kind, facts.profile):
            continue
        part = catalog.part_for(listed, facts.model, facts.profile)
        found = _candidate(part, facts, catalog, now, config, feedback or {}, rules)
        if found is not None:
            candidates.append(found)
    candidates.sort(
        key=lambda r: (
            -r.final_confidence,
            r.due_in_days if r.due_in_days is not None else float("inf"),
            r.part,
        )
    )
    return [msgspec.structs.replace(r, rank=i) for i, r in enumerate(candidates[: config.top_n], 1)]


class _Chain:
    """The confidence of one candidate, step by step, each step written down."""

    def __init__(self, base: float) -> None:
        self.base = base
        self.confidence = base
        self.steps: list[Factor] = []

    def note(self, factor: str, value: float, why: str) -> None:
        self.steps.append(Factor(factor=factor, value=value, confidence=self.confidence, why=why))

    def scale(self, factor: str, value: float, why: str) -> None:
        self.confidence = scale(self.confidence, value)
        self.note(factor, value, why)


def _candidate(
    part: Part,
    facts: DeviceFacts,
    catalog: Catalog,
    now: datetime,
    config: RecommenderConfig,
    feedback: Mapping[str, tuple[int, int]],
    rules: Sequence[BusinessRule],
) -> Recommendation | None:
    wear = wear_of(part, facts, now)
    if wear is None:
        return None
    chain = _Chain(round(min(max(wear.fraction * 100, 0.5), 99.5), 1))
    since = "the last replacement" if part.code in facts.replacements else "new"
    chain.note("wear", round(wear.fraction, 3), f"{wear.clock} since {since}")
    _adjust(chain, "season", facts.season, part, facts, catalog.seasons, part.seasonal)
    _adjust(chain, "terrain", facts.terrain, part, facts, catalog.terrains, part.terrain_specific)
    seen = _usage_evidence_feedback(chain, part, facts, config, feedback)
    decided = facts.decided.get(part.code)
    if decided is not None and not seen and now - decided < timedelta(days=config.quiet_days):
        return None
    if _rules(chain, rules, facts, part, wear):
        return None  # a rule excluded it
    if chain.confidence > 100 or chain.confidence < 0:
        chain.confidence = min(100.0, max(0.0, chain.confidence))
        chain.note("cap", chain.confidence, "confidence lies between 0 and 100")
    if chain.confidence < config.min_confidence and not seen:
        return None
    return _recommendation(part, facts, catalog, now, config, wear, chain)


def _usage_evidence_feedback(
    chain: _Chain,
    part: Part,
    facts: DeviceFacts,
    config: RecommenderConfig,
    feedback: Mapping[str, tuple[int, int]],
) -> bool:
    """Usage, anomaly evidence and past feedback; True if an anomaly explains the part."""
    usage = config.usage_factors.get(facts.usage_category)
    if usage is not None and usage != 1.0:
        chain.scale("usage", usage, f"{facts.usage_category} usage")
    seen = [
        f"{d} {k} {m}"
        for d, m, k in facts.anomalies
        if any(e.matches(d, m, k) for e in part.evidence)
    ]
    if seen:
        chain.scale("evidence", config.evidence_factor, "anomaly: " + ", ".join(sorted(set(seen))))
    votes = feedback.get(part.code)
    if votes is not None and (votes[0] or votes[1]):
        factor = round(feedback_factor(votes[0], votes[1], config), 3)
        chain.scale("feedback", factor, f"{votes[0]} accepted, {votes[1]} rejected before")
    return bool(seen)


def _rules(
    chain: _Chain, rules: Sequence[BusinessRule], facts: DeviceFacts, part: Part, wear: Wear
) -> bool:
    """The business rules in priority order; True if one excluded the part."""
    for rule in rules:
        if not rule_matches(rule, rule_facts(facts, part, wear.fraction, chain.confidence)):
            continue
        chain.confidence, excluded = apply_rule(rule, chain.confidence)
        then = ", ".join(f"{k} {v}" for k, v in rule.then.items())
        chain.note("rule", float(rule.priority), f"{rule.name}: {then}")
        if excluded:
            return True
    return False


def _recommendation(
    part: Part,
    facts: DeviceFacts,
    catalog: Catalog,
    now: datetime,
    config: RecommenderConfig,
    wear: Wear,
    chain: _Chain,
) -> Recommendation:
    stock, reorder = _stock(catalog, part, facts.dealer)
    due_in = None if wear.days_left is None else round(wear.days_left, 1)
    return Recommendation(
        device_id=facts.device_id,
        part=part.code,
        name=part.name,
        category=part.category,
        rank=0,
        base_confidence=chain.base,
        final_confidence=chain.confidence,
        wear=round(wear.fraction, 3),
        due=None if due_in is None else (now + timedelta(days=due_in)).date(),
        due_in_days=due_in,
        cost=part.cost,
        critical=part.critical,
        stock=stock,
        reorder=reorder,
        reasoning=tuple(chain.steps),
        model_version=config.version,
    )


def _adjust(
    chain: _Chain,
    name: str,
    key: str,
    part: Part,
    facts: DeviceFacts,
    adjustments: Sequence[Any],
    flagged: bool,
) -> None:
    for adj in adjustments:
        if adj.key != key or not adj.applies(part, facts.region):
            continue
        if not (adj.parts or adj.categories) and not flagged:
            continue  # a blanket factor covers the parts flagged seasonal / terrain-specific
        where = f" in {facts.region}" if adj.regions else ""
        note = f": {adj.note}" if adj.note else ""
        chain.scale(name, adj.factor, f"{key}{where}{note}")


def _stock(catalog: Catalog, part: Part, dealer: str) -> tuple[str, bool]:
    level = catalog.stock.get((part.code, dealer))
    if level is None:
        return "unknown", False
    if level.on_hand <= 0:
        return "out", True
    if level.on_hand <= level.reorder_point:
        return "low", True
    return "in_stock", False
