"""A figure from data the configuration was not chosen on: SKAB files split by experiment.

The files are dealt into ``k`` folds (file ``i`` into fold ``i mod k``). For each fold, every
configuration of a small grid around the shipped one is scored on the other folds, the best by
F1 is kept, and that one is scored on the fold it never saw. The held-out counts of all folds
are summed into one figure, which is what to expect on experiments of the same kind.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from simulators.evaluation import Counts, evaluate_skab_file
from twin.anomaly.config import SKAB, DetectorConfig
from twin.errors import ConfigurationError

GRID: Mapping[str, Sequence[float]] = {
    "level_hi": (4.5, 5.5, 6.5),
    "shift_hi": (5.5, 6.5, 7.5),
    "shift_lo": (3.5, 4.0, 4.5),
}
"""Around the shipped SKAB configuration: where a level opens, and where a shift opens and
closes."""


def grid(
    base: DetectorConfig = SKAB, axes: Mapping[str, Sequence[float]] = GRID
) -> list[DetectorConfig]:
    out = []
    for values in itertools.product(*axes.values()):
        change = dict(zip(axes, values, strict=True))
        config = msgspec.structs.replace(base, **change)
        if config.level_lo < config.level_hi and config.shift_lo < config.shift_hi:
            out.append(config)
    return out


@dataclass
class Fold:
    held_out: list[Path]
    chosen: DetectorConfig
    tuned: Counts
    """The chosen configuration on the other folds (what it was chosen for)."""
    held: Counts
    """The same on this fold, which it never saw."""


def _total(counts: Sequence[Counts]) -> Counts:
    total = Counts()
    for c in counts:
        total.add(c)
    return total


def cross_validate(
    files: Sequence[Path], k: int, configs: Sequence[DetectorConfig] | None = None
) -> list[Fold]:
    if not 2 <= k <= len(files):
        raise ConfigurationError(
            f"--folds must be between 2 and the number of files ({len(files)})"
        )
    configs = list(configs) if configs is not None else grid()
    scored = [[evaluate_skab_file(f, c).counts for f in files] for c in configs]
    folds = []
    for fold in range(k):
        held = [i for i in range(len(files)) if i % k == fold]
        tune = [i for i in range(len(files)) if i % k != fold]
        by_config = [_total([row[i] for i in tune]) for row in scored]
        best = max(range(len(configs)), key=lambda c: by_config[c].f1)
        folds.append(
            Fold(
                held_out=[files[i] for i in held],
                chosen=configs[best],
                tuned=by_config[best],
                held=_total([scored[best][i] for i in held]),
            )
        )
    return folds
