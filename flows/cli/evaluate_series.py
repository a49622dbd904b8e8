"""``twin evaluate synthetic`` and the window scores beside every protocol's own."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from simulators.evaluation import SKAB_LEARN_ROWS, FileResult
from simulators.series_evaluation import GroupResult, SeriesRun, evaluate_series, run_series
from simulators.synthetic import FAMILIES, Series, suite
from simulators.windows import CorpusScore
from twin.anomaly.config import FLEET, DetectorConfig


def skab_windows(results: list[FileResult]) -> GroupResult:
    """The SKAB files scored by windows too (their first 400 rows in probation)."""
    runs = []
    for r in results:
        labels = [row[3] for row in r.rows]
        series = Series(r.path.name, "skab", 1.0, [row[0] for row in r.rows], [], labels)
        runs.append(SeriesRun(series, [row[2] for row in r.rows], [row[1] for row in r.rows],
                              learn=SKAB_LEARN_ROWS))  # fmt: skip
    return evaluate_series(runs)[0]


def window_line(scores: dict[str, CorpusScore]) -> str:
    standard = scores["standard"]
    return (
        f"window scores (0 = silent, 100 = perfect): standard {standard.normalised:.1f}, "
        f"reward_low_fp {scores['reward_low_fp'].normalised:.1f}, reward_low_fn "
        f"{scores['reward_low_fn'].normalised:.1f}; {standard.detected} of "
        f"{standard.detected + standard.missed} windows detected, {standard.false_alarms} "
        "detections outside every window"
    )


def window_report(scores: dict[str, CorpusScore]) -> dict[str, Any]:
    standard = scores["standard"]
    return {
        **{name: round(s.normalised, 2) for name, s in scores.items()},
        "windows": standard.detected + standard.missed,
        "detected": standard.detected,
        "false_detections": standard.false_alarms,
    }


def _row(g: GroupResult) -> str:
    w = g.windows
    return (
        f"{g.name:<16} {g.counts.f1:>6.3f} {g.counts.far:>6.2%} {w['standard'].detected:>4}/"
        f"{w['standard'].detected + w['standard'].missed:<3} {g.false_alarms:>5} "
        f"{g.false_per_1000:>7.2f} {w['standard'].normalised:>7.1f} "
        f"{w['reward_low_fp'].normalised:>7.1f} {w['reward_low_fn'].normalised:>7.1f}"
    )


def run_synthetic(args: argparse.Namespace) -> tuple[DetectorConfig, dict[str, Any]]:
    config = FLEET
    series = suite(args.seed, args.per_family)
    started = time.perf_counter()
    runs = [run_series(s, config) for s in series]
    seconds = time.perf_counter() - started
    total, families = evaluate_series(runs, args.window, args.probation, args.threshold)
    rows = sum(len(s.values) for s in series)
    print(
        f"synthetic suite, seed {args.seed}, detectors {config.version}: {len(series)} series "
        f"of {len(FAMILIES)} families, {rows} rows ({rows / seconds:,.0f} rows/s); windows "
        f"{args.window:.0%} of a series per anomaly, the first {args.probation:.0%} learn"
    )
    print(
        f"{'family':<16} {'F1':>6} {'FAR':>6} {'windows':>8} {'false':>5} {'/1000':>7} "
        f"{'std':>7} {'low_fp':>7} {'low_fn':>7}"
    )
    for family in FAMILIES:
        print(_row(families[family]))
    print(_row(total))
    print(
        "F1 and FAR per row; windows: detected of labelled; false: detections outside every "
        "window (/1000: per 1,000 such rows); std, low_fp, low_fn: window scores by profile"
    )
    print(f"reading scores >= {args.threshold} as detections, the benchmark's way: "
          + scored_line(total.scored))  # fmt: skip
    evaluation = {
        "dataset": "synthetic",
        "seed": args.seed,
        "series": len(series),
        "f1": round(total.counts.f1, 4),
        "far": round(total.counts.far, 4),
        "false_per_1000": round(total.false_per_1000, 3),
        "window": window_report(total.windows),
        "scored": {"threshold": args.threshold, **window_report(total.scored)},
        "per_family": {
            name: {
                "f1": round(g.counts.f1, 4),
                "false_per_1000": round(g.false_per_1000, 3),
                "window": window_report(g.windows),
            }
            for name, g in families.items()
        },
    }
    return config, evaluation


def scored_line(scores: dict[str, CorpusScore]) -> str:
    return " / ".join(f"{name} {s.normalised:.1f}" for name, s in scores.items()) + (
        f"; {scores['standard'].false_alarms} detections outside every window"
    )


def run_nab(args: argparse.Namespace) -> tuple[DetectorConfig, dict[str, Any]]:
    """A benchmark-layout corpus: every file one device, scored with the corpus's windows."""
    from simulators.nab import read_corpus

    config = FLEET
    files = read_corpus(Path(args.root))
    started = time.perf_counter()
    runs = []
    for f in files:
        run = run_series(f.series, config)
        run.spans, run.learn = f.spans, f.probation
        runs.append(run)
    seconds = time.perf_counter() - started
    total, categories = evaluate_series(runs, threshold=args.threshold)
    rows = sum(len(f.series.values) for f in files)
    print(f"{args.root}, detectors {config.version}: {len(files)} files, {rows} rows "
          f"({rows / max(seconds, 1e-9):,.0f} rows/s); detections: where an anomaly opens | "
          f"every reading scoring >= {args.threshold}")  # fmt: skip
    print(f"{'category':<24} {'files':>5} {'windows':>8} {'std':>7} {'low_fp':>7} {'low_fn':>7}"
          f" | {'windows':>8} {'false':>6} {'std':>7} {'low_fp':>7} {'low_fn':>7}")  # fmt: skip
    for group in [*sorted(categories.values(), key=lambda g: g.name), total]:
        o, c = group.windows, group.scored
        found = f"{o['standard'].detected}/{o['standard'].detected + o['standard'].missed}"
        hits = f"{c['standard'].detected}/{c['standard'].detected + c['standard'].missed}"
        print(f"{group.name:<24} {len(o['standard'].series):>5} {found:>8} "
              f"{o['standard'].normalised:>7.1f} {o['reward_low_fp'].normalised:>7.1f} "
              f"{o['reward_low_fn'].normalised:>7.1f} | {hits:>8} {c['standard'].false_alarms:>6} "
              f"{c['standard'].normalised:>7.1f} {c['reward_low_fp'].normalised:>7.1f} "
              f"{c['reward_low_fn'].normalised:>7.1f}")  # fmt: skip
    evaluation = {
        "dataset": "nab",
        "root": str(args.root),
        "files": len(files),
        "rows": rows,
        "onsets": window_report(total.windows),
        "scored": {"threshold": args.threshold, **window_report(total.scored)},
        "per_category": {
            name: {"onsets": window_report(g.windows), "scored": window_report(g.scored)}
            for name, g in categories.items()
        },
    }
    return config, evaluation


def run_all(args: argparse.Namespace, warmup: int) -> dict[str, Any]:
    """Every evaluation at once, a line each: a change to the detectors is judged on all of
    them together (SKAB files when ``--skab`` names them, the synthetic suite, a scenario)."""
    import msgspec

    from simulators import scenario as scenarios
    from simulators.evaluation import evaluate_skab, run_scenario, skab_files
    from twin.anomaly.config import SKAB

    out: dict[str, Any] = {"dataset": "all"}
    for path in args.skab or ():
        files = skab_files([path])
        counts, results = evaluate_skab(files, SKAB)
        win = skab_windows(results)
        out[f"skab:{path}"] = {"f1": round(counts.f1, 4), "far": round(counts.far, 4),
                               "standard": round(win.windows["standard"].normalised, 2),
                               "false_per_1000": round(win.false_per_1000, 3)}  # fmt: skip
        print(f"skab {path}: F1 {counts.f1:.3f}, FAR {counts.far:.1%}, window score "
              f"{win.windows['standard'].normalised:.1f}, {win.false_per_1000:.2f} false "
              "detections per 1,000 clean rows")  # fmt: skip
    scores = []
    for seed in args.seeds:
        total, _ = evaluate_series([run_series(s, FLEET) for s in suite(seed, args.per_family)])
        scores.append(total.windows["standard"].normalised)
    out["synthetic"] = {"seeds": args.seeds, "standard": [round(s, 2) for s in scores]}
    print(f"synthetic, seeds {', '.join(map(str, args.seeds))}: window score "
          f"{' / '.join(f'{s:.1f}' for s in scores)}")  # fmt: skip
    config = msgspec.structs.replace(FLEET, warmup_readings=warmup)
    _, result = run_scenario(scenarios.load("mixed-faults"), args.seeds[0], config)
    least = min(k.share for k in result.kinds.values())
    per_day = 24 * result.false_per_device_hour
    out["scenario"] = {"least_detected_share": least, "false_per_device_day": round(per_day, 3)}
    print(f"scenario mixed-faults, seed {args.seeds[0]}: every fault kind detected at least "
          f"{least:.0%}, {per_day:.1f} false anomalies per device-day")  # fmt: skip
    return out
