"""Business rules over a candidate recommendation: when they match, and what they do."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from twin.maintenance.catalog import BusinessRule, Part
from twin.maintenance.records import DeviceFacts


def scale(confidence: float, factor: float) -> float:
    """Multiply the odds of a confidence (0-100) by ``factor``."""
    c = min(max(confidence, 0.5), 99.5)
    odds = c / (100 - c) * factor
    return round(100 * odds / (1 + odds), 1)


def rule_facts(facts: DeviceFacts, part: Part, wear: float, confidence: float) -> dict[str, Any]:
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


def apply_rule(rule: BusinessRule, confidence: float) -> tuple[float, bool]:
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
