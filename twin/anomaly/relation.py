"""The relation between a device's metrics: each can read normally while together they do not.

A pump whose flow falls while its pressure and current stay put, a motor drawing more current
for the same speed: every metric inside its own usual range, the relation between them broken.
For the metrics a profile names in ``relations``, the layer learns their mean and covariance
(exponentially weighted, slowly: ``relation_alpha``, from readings that raised nothing) and
judges every reading by Hotelling's ``T^2 = d' S^-1 d`` (``d`` the values less their means),
which for ``p`` metrics follows a chi-square with ``p`` degrees of freedom. Its own means move
slowly on purpose: the level baselines follow each metric within minutes, and a relation
judged on their deviations would learn a broken relation as fast as they do. Its tail
probability goes on the common score scale (:mod:`~twin.anomaly.scores`), and the thresholds
are the deviations of the same rarity (``relation_hi`` spreads to open).

A machine's relation holds at the operating point its driver (the load) sets: when the
relation names the profile's driver, the others are judged given it (``T^2`` less the driver's
own distance, one degree of freedom fewer), and a machine at rest is not judged at all. A
relation that has changed for good is learnt after ``adapt`` readings of reporting it.

The anomaly names the metrics that drive it, the strongest first (``flow+pressure``: each
metric's distance from what the others say it should read, in its spread given them, at least
half the strongest's), and for each of them its expected value given the others (the
regression of it on them that the covariance holds) against what it read: the anomaly's
``expected`` and ``observed`` are the strongest one's, its ``explanation`` has them all. The
state is the device's, one :class:`Relation` in its :class:`~twin.anomaly.state.DetectorState`;
the scalar and the vectorised paths call the same :meth:`Relations.judge` with the same
numbers.
"""

from __future__ import annotations

import math

from twin.anomaly.config import DetectorConfig
from twin.anomaly.episodes import Episodes
from twin.anomaly.records import Detector, Severity
from twin.anomaly.scores import L_ALARM, log_tail
from twin.anomaly.state import Relation

KEY = "relation"
_LN10 = math.log(10.0)


def chi2_log10_sf(x: float, k: int) -> float:
    """``-log10`` of the chance that a chi-square with ``k`` degrees of freedom passes ``x``
    (exact for whole ``k``, in logarithms so that it never underflows)."""
    h = max(x, 0.0) / 2
    if k % 2 == 0:
        term = total = 1.0
        for i in range(1, k // 2):
            term *= h / i
            total += term
        return (h - math.log(total)) / _LN10
    s = math.sqrt(h)
    log_erfc = math.log(math.erfc(s)) if s < 25 else -h - math.log(s * math.sqrt(math.pi))
    if k == 1:
        return -log_erfc / _LN10
    term = total = s / math.gamma(1.5)
    for i in range(2, (k + 1) // 2):
        term *= h / (i - 0.5)
        total += term
    rest = -h + math.log(total)
    top = max(log_erfc, rest)
    return -(top + math.log(math.exp(log_erfc - top) + math.exp(rest - top))) / _LN10


class Relations:
    def __init__(
        self, *, hi: float, lo: float, persist: int, learn_limit: float, alpha: float,
        warmup: int, adapt: int = 1000,
    ) -> None:  # fmt: skip
        self.open_at, self.close_at = log_tail(hi), log_tail(lo)
        """The thresholds as tail probabilities (``-log10``) of deviations that far."""
        self.learn_at = log_tail(learn_limit)
        self.critical_at = log_tail(2 * hi)
        """Past this (``-log10`` of the tail probability), the anomaly is critical."""
        self.persist, self.alpha, self.warmup, self.adapt = persist, alpha, warmup, adapt

    @classmethod
    def from_config(cls, cfg: DetectorConfig) -> Relations:
        return cls(hi=cfg.relation_hi, lo=cfg.relation_lo, persist=cfg.relation_persist,
                   learn_limit=cfg.relation_learn, alpha=cfg.relation_alpha,
                   warmup=cfg.relation_warmup, adapt=cfg.adapt)  # fmt: skip

    @staticmethod
    def start(metrics: tuple[str, ...]) -> Relation:
        p = len(metrics)
        return Relation(metrics, [0.0] * p, [0.0] * (p * p))

    def judge(
        self, rel: Relation, eps: Episodes, ts_ms: int, x: list[float], given: int = -1
    ) -> float:
        """One reading of every metric of the relation (``x``, in ``rel.metrics`` order);
        ``given``: the position of the profile's driver among them (-1: none), which then sets
        the operating point that the others are judged at. Returns the reading's score: how
        rare it is where nothing reports it yet. Plain floats: for a few metrics, numpy's cost
        per call is most of the work."""
        p = len(x)
        mean, cov = rel.mean, rel.cov
        d = [x[i] - mean[i] for i in range(p)]
        is_open = KEY in eps.active
        low = 0.0
        if rel.n >= self.warmup:
            t2 = _t2(cov, d, p)
            if given >= 0:  # the others given the driver: less the driver's own distance
                t2 -= d[given] * d[given] / max(cov[given * p + given], 1e-12)
            low = chi2_log10_sf(t2, p - (given >= 0))
            score = low / (low + L_ALARM)
            if is_open:
                ep = eps.active[KEY]
                if low > self.close_at and score > ep.score:  # a new worst point: explain it
                    named = [rel.metrics.index(m) for m in ep.metric.split("+")]
                    pairs = _given_others(_precision(cov, p), d, x, named)
                    eps.extend(KEY, score, pairs[0], pairs[1], low, pairs)
                elif low > self.close_at:  # still open, no worse: the worst point stays
                    eps.extend(KEY, score, ep.expected or 0.0, ep.observed or 0.0, low)
                else:
                    eps.release(KEY, ts_ms)
            else:
                rel.run = rel.run + 1 if low > self.open_at else 0
                if rel.run >= self.persist:
                    self._open(rel, eps, ts_ms, score, low, _precision(cov, p), d, x, given)
        if not is_open and KEY not in eps.active and low <= self.learn_at:
            rel.held = 0
        else:  # a lasting change is learnt after ``adapt`` readings of reporting it
            rel.held += 1
        if rel.held == 0 or rel.held > self.adapt:
            rel.n += 1
            a = 1.0 / rel.n if rel.n <= self.warmup else self.alpha
            rel.mean = [mean[i] + a * d[i] for i in range(p)]
            b = 1.0 - a
            rel.cov = [b * (cov[i * p + j] + a * d[i] * d[j]) for i in range(p) for j in range(p)]
        return low / (low + L_ALARM) if low and not is_open else 0.0

    def _open(
        self, rel: Relation, eps: Episodes, ts_ms: int, score: float, low: float,
        precision: list[list[float]], d: list[float], x: list[float], given: int,
    ) -> None:  # fmt: skip
        # each metric against what the others say it should read, in its spread given them
        pd = _times(precision, d)
        off = [abs(pd[j]) / math.sqrt(precision[j][j]) for j in range(len(x))]
        if given >= 0:
            off[given] = -1.0  # the operating point is what the others are judged at
        order = sorted(range(len(x)), key=lambda j: -round(off[j], 9))
        driving = [rel.metrics[j] for j in order if off[j] >= 0.5 * off[order[0]]][:3]
        severity = Severity.CRITICAL if low > self.critical_at else Severity.WARNING
        pairs = _given_others(precision, d, x, order[: len(driving)])
        eps.open(KEY, Detector.RELATION, "relation", "+".join(driving), severity, score, ts_ms,
                 pairs[0], pairs[1], quiet=False, explained=pairs)  # fmt: skip


def _t2(cov: list[float], d: list[float], p: int) -> float:
    """``d' S^-1 d`` by a Cholesky factor (``S = L L'``, then ``|L^-1 d|^2``), ``S`` the
    covariance with a ridge of a billionth of each variance: every reading needs it, the whole
    inverse only a reading that opens or extends an anomaly."""
    fac = [0.0] * (p * p)
    y = [0.0] * p
    t2 = 0.0
    for i in range(p):
        ip = i * p
        for j in range(i):
            jp = j * p
            s = cov[ip + j]
            for k in range(j):
                s -= fac[ip + k] * fac[jp + k]
            fac[ip + j] = s / fac[jp + j]
        var = max(cov[ip + i], 1e-12)
        s = var * (1 + 1e-9)
        z = d[i]
        for k in range(i):
            f = fac[ip + k]
            s -= f * f
            z -= f * y[k]
        r = fac[ip + i] = math.sqrt(max(s, 1e-9 * var))
        y[i] = z = z / r
        t2 += z * z
    return t2


def _times(m: list[list[float]], v: list[float]) -> list[float]:
    return [sum(a * b for a, b in zip(row, v, strict=True)) for row in m]


def _precision(cov: list[float], p: int) -> list[list[float]]:
    """The inverse of the covariance (row by row in ``cov``), inverted in spreads, where it is
    well conditioned, by Gauss-Jordan elimination (positive definite: no pivoting needed)."""
    scale = [math.sqrt(max(cov[i * p + i], 1e-12)) for i in range(p)]
    a = [[cov[i * p + j] / (scale[i] * scale[j]) + (1e-9 if i == j else 0.0) for j in range(p)]
         + [1.0 if k == i else 0.0 for k in range(p)] for i in range(p)]  # fmt: skip
    for c in range(p):
        row = a[c]
        inv = 1.0 / row[c]
        for k in range(2 * p):
            row[k] *= inv
        for r in range(p):
            if r != c:
                other, f = a[r], a[r][c]
                if f:
                    for k in range(2 * p):
                        other[k] -= f * row[k]
    return [[a[i][p + j] / (scale[i] * scale[j]) for j in range(p)] for i in range(p)]


def _given_others(
    precision: list[list[float]], d: list[float], x: list[float], named: list[int]
) -> list[float]:
    """For each metric of ``named``, its expected value given the others (the regression of
    it on them that the covariance holds) and what it read, as flat pairs."""
    pd = _times(precision, d)
    pairs = []
    for j in named:
        pairs += [x[j] - pd[j] / precision[j][j], x[j]]
    return pairs
