"""``twin evaluate``: the detectors measured on labelled data, recorded in the model registry."""

from __future__ import annotations

import argparse
import csv
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from flows.cli.evaluate_series import scored_line, skab_windows, window_line, window_report
from flows.runtime.settings import Settings
from simulators import scenario as scenarios
from simulators.evaluation import (
    Counts,
    FileResult,
    ScenarioResult,
    evaluate_skab,
    run_scenario,
)
from simulators.traffic import TrafficConfig
from twin.anomaly.config import FLEET, SKAB, DetectorConfig
from twin.errors import ConfigurationError


def run_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    if args.dataset == "all":
        from flows.cli.evaluate_series import run_all

        evaluation = run_all(args, settings.detector_warmup)
        if args.report:
            Path(args.report).write_text(json.dumps(evaluation, indent=2) + "\n")
        print("not recorded in the model registry: it holds one configuration per evaluation")
        return 0
    if args.dataset == "skab":
        config, evaluation = _skab(args)
    elif args.dataset == "synthetic":
        from flows.cli.evaluate_series import run_synthetic

        config, evaluation = run_synthetic(args)
    elif args.dataset == "nab":
        from flows.cli.evaluate_series import run_nab

        config, evaluation = run_nab(args)
    else:
        config, evaluation = _scenario(args, settings)
    if args.report:
        Path(args.report).write_text(json.dumps(evaluation, indent=2) + "\n")
    _record(settings, config, evaluation)
    return 0


def _skab(args: argparse.Namespace) -> tuple[DetectorConfig, dict[str, Any]]:
    config = SKAB
    started = time.perf_counter()
    total, results = evaluate_skab(args.paths, config)
    seconds = time.perf_counter() - started
    rows = sum(len(r.rows) for r in results)
    print(f"SKAB protocol, detectors {config.version}: {len(results)} files, {rows} rows")
    print(
        f"{'file':<28} {'TP':>5} {'FP':>5} {'TN':>5} {'FN':>5} {'F1':>6} {'FAR':>6} "
        f"{'MAR':>6} {'delay s':>8}"
    )
    for r in results:
        c = r.counts
        delay = "-" if r.delay_s is None else f"{r.delay_s:.0f}"
        name = str(Path(r.path.parent.name) / r.path.name)
        print(
            f"{name:<28} {c.tp:>5} {c.fp:>5} {c.tn:>5} {c.fn:>5} {c.f1:>6.3f} "
            f"{c.far:>6.1%} {c.mar:>6.1%} {delay:>8}"
        )
    print(
        f"{'all files':<28} {total.tp:>5} {total.fp:>5} {total.tn:>5} {total.fn:>5} "
        f"{total.f1:>6.3f} {total.far:>6.1%} {total.mar:>6.1%}"
    )
    delays = sorted(r.delay_s for r in results if r.delay_s is not None)
    median = delays[len(delays) // 2] if delays else None
    print(
        f"F1 {total.f1:.3f}  FAR {total.far:.1%}  MAR {total.mar:.1%}  median delay "
        f"{'-' if median is None else f'{median:.0f} s'}  ({rows / seconds:,.0f} rows/s)"
    )
    windows = skab_windows(results)
    print(window_line(windows.windows))
    print("reading scores >= 0.5 as detections, the benchmark's way: "
          + scored_line(windows.scored))  # fmt: skip
    print(
        f"false alarms: {windows.false_alarms} opened outside every window, "
        f"{windows.false_per_1000:.2f} per 1,000 such rows"
    )
    held_out = _held_out(results, args.folds) if args.folds else None
    if args.rows_csv:
        _rows_csv(Path(args.rows_csv), results)
    if args.plots:
        _plots(Path(args.plots), results)
    evaluation: dict[str, Any] = {
        "dataset": "skab",
        "files": len(results),
        "paths": [str(p) for p in args.paths],
        **_scores(total),
        "median_delay_s": median,
        "window": window_report(windows.windows),
        "scored": {"threshold": 0.5, **window_report(windows.scored)},
        "false_per_1000": round(windows.false_per_1000, 3),
        "per_file": [
            {"file": str(r.path), "f1": round(r.counts.f1, 4), "delay_s": r.delay_s}
            for r in results
        ],
        "held_out": held_out,
    }
    return config, evaluation


def _held_out(results: list[FileResult], k: int) -> dict[str, Any]:
    """Cross-validated by experiment: the figure for files the configuration was not chosen on."""
    from simulators.tuning import GRID, cross_validate, grid

    configs = grid()
    folds = cross_validate([r.path for r in results], k, configs)
    print(f"held out, {k} folds by experiment, best of {len(configs)} configurations each:")
    for n, fold in enumerate(folds):
        chose = ", ".join(f"{axis} {getattr(fold.chosen, axis)}" for axis in GRID)
        print(
            f"  fold {n + 1} ({len(fold.held_out)} files): chose {chose} (F1 "
            f"{fold.tuned.f1:.3f} where chosen); held out F1 {fold.held.f1:.3f}, FAR "
            f"{fold.held.far:.1%}"
        )
    held = Counts()
    for fold in folds:
        held.add(fold.held)
    print(f"held out, all folds: F1 {held.f1:.3f}  FAR {held.far:.1%}  MAR {held.mar:.1%}")
    return {"folds": k, **_scores(held)}


def _scores(c: Counts) -> dict[str, Any]:
    return {
        "tp": c.tp,
        "fp": c.fp,
        "tn": c.tn,
        "fn": c.fn,
        "accuracy": round(c.accuracy, 4),
        "precision": round(c.precision, 4),
        "recall": round(c.recall, 4),
        "f1": round(c.f1, 4),
        "far": round(c.far, 4),
        "mar": round(c.mar, 4),
    }


def _rows_csv(path: Path, results: list[FileResult]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["file", "datetime", "score", "verdict"])
        for r in results:
            for ts, score, verdict, _label in r.rows:
                moment = datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
                writer.writerow([str(r.path), moment, f"{score:.4f}", verdict])
    print(f"rows written to {path}")


def _plots(folder: Path, results: list[FileResult]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigurationError("--plots needs matplotlib (pip install matplotlib)") from None
    folder.mkdir(parents=True, exist_ok=True)
    for r in results:
        n = len(r.columns) + 1
        fig, axes = plt.subplots(n, 1, figsize=(12, 1.3 * n + 1), sharex=True)
        xs = list(range(len(r.rows)))
        labels = [row[3] for row in r.rows]
        verdicts = [row[2] for row in r.rows]
        for ax, (name, values) in zip(axes, r.columns.items(), strict=False):
            ax.plot(xs, values, lw=0.7, color="tab:blue")
            ax.set_ylabel(name, rotation=0, ha="right", fontsize=7)
            lo, hi = min(values), max(values)
            ax.fill_between(xs, lo, hi, where=[lb == 1 for lb in labels], color="tab:red",
                            alpha=0.12, step="mid")  # fmt: skip
        ax = axes[-1]
        ax.plot(xs, [row[1] for row in r.rows], lw=0.7, color="black", label="score")
        ax.fill_between(xs, 0, 1, where=[v == 1 for v in verdicts], color="tab:orange",
                        alpha=0.35, step="mid", label="verdict 1")  # fmt: skip
        ax.fill_between(xs, 0, 1, where=[lb == 1 for lb in labels], color="tab:red",
                        alpha=0.12, step="mid", label="labelled anomaly")  # fmt: skip
        ax.axvline(400, color="gray", ls="--", lw=0.8)
        ax.set_ylim(0, 1)
        ax.legend(loc="upper left", fontsize=7)
        ax.set_xlabel("row (the first 400 learn)")
        fig.suptitle(f"{r.path.parent.name}/{r.path.name}: F1 {r.counts.f1:.3f}", fontsize=9)
        fig.tight_layout()
        out = folder / f"{r.path.parent.name}-{r.path.stem}.png"
        fig.savefig(out, dpi=90)
        plt.close(fig)
    print(f"{len(results)} plots written to {folder}")


def _scenario(
    args: argparse.Namespace, settings: Settings
) -> tuple[DetectorConfig, dict[str, Any]]:
    config = msgspec.structs.replace(FLEET, warmup_readings=settings.detector_warmup)
    scenario = scenarios.load(args.scenario)
    overrides = {key: getattr(args, flag) for flag, key in
                 (("devices", "devices"), ("rate", "rate"), ("duration", "duration_s"))
                 if getattr(args, flag) is not None}  # fmt: skip
    started = time.perf_counter()
    traffic_config, result = run_scenario(scenario, args.seed, config, **overrides)
    seconds = time.perf_counter() - started
    _print_scenario(scenario.name, config, traffic_config, result, seconds)
    evaluation = {
        "dataset": f"scenario:{scenario.name}",
        "devices": traffic_config.devices,
        "rate": traffic_config.rate,
        "duration_s": traffic_config.duration_s,
        "seed": args.seed,
        "readings": result.readings,
        "kinds": {
            k.kind: {
                "injected": k.injected,
                "detected": k.detected,
                "share": round(k.share, 4),
                "median_delay_s": k.median_delay_s,
            }
            for k in result.kinds.values()
        },
        "quiet_devices": result.quiet_devices,
        "false_alarms": result.false_alarms,
        "false_per_device_hour": round(result.false_per_device_hour, 4),
        "false_per_device_day": round(24 * result.false_per_device_hour, 3),
    }
    return config, evaluation


def _print_scenario(
    name: str,
    config: DetectorConfig,
    traffic: TrafficConfig,
    result: ScenarioResult,
    seconds: float,
) -> None:
    print(
        f"scenario {name}, detectors {config.version}: {traffic.devices} devices, "
        f"{traffic.rate:.0f} readings/s, {traffic.duration_s:.0f} s of device time, "
        f"{result.readings} readings ({result.readings / seconds:,.0f}/s evaluated)"
    )
    print(f"{'fault':<22} {'injected':>8} {'detected':>8} {'share':>7} {'median delay s':>15}")
    for k in sorted(result.kinds.values(), key=lambda k: k.kind):
        delay = "-" if k.median_delay_s is None else f"{k.median_delay_s:.1f}"
        print(f"{k.kind:<22} {k.injected:>8} {k.detected:>8} {k.share:>7.0%} {delay:>15}")
    print(
        f"false anomalies on {result.quiet_devices} fault-free devices: {result.false_alarms} "
        f"in {result.quiet_hours:.1f} device-hours = {result.false_per_device_hour:.2f} "
        f"per device-hour, {24 * result.false_per_device_hour:.1f} per device-day (after warm-up)"
    )


def _record(settings: Settings, config: DetectorConfig, evaluation: dict[str, Any]) -> None:
    if not settings.database_url:
        print("not recorded in the model registry: TWIN_DATABASE_URL is not set")
        return
    from storage import registry
    from storage.database import migrate

    migrate(settings.database_url)
    registry.register(
        settings.database_url, config.version, config.name, msgspec.to_builtins(config)
    )
    evaluation["evaluated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    registry.add_evaluation(settings.database_url, config.version, evaluation)
    print(f"recorded in model_versions as {config.version}")
