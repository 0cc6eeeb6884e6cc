"""End to end on one big day (default 10 M trades, 30 M order events): validate -> features -> rule detections ->
model scores -> alerts, each phase in its own process (its own peak RSS), against the polars floor.

The day is benchmarks/bench_features.py's (generated once under data/bench/). The phases are the library calls
the daily assets make: the importer's validation, the feature tables, RuleBasedDetector on the day, the scoring
of every account-day (the champion if registered, else IsolationForest fitted on the day), and the engine.
Storing into the database is left out (bench_storage.py measures it). Prints figures; asserts nothing.
Usage: python benchmarks/bench_e2e.py [--trades 10000000] [--orders 30000000] [--skip-validate]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_features as bf  # noqa: E402

PHASES = ("validate", "features", "detect", "score", "alerts", "floor")


def phase_detect(out: Path) -> dict:
    import polars as pl

    from surveillance_pipeline.config import load_settings
    from surveillance_pipeline.detectors.day import detect_day
    from surveillance_pipeline.detectors.rules import RuleBasedDetector

    settings = load_settings(environ={})
    trades = pl.scan_parquet(out / "validated_trades" / "*.parquet")
    orders = pl.scan_parquet(out / "validated_orders" / "*.parquet")
    run = detect_day(RuleBasedDetector(settings.detectors), bf.DAY, trades, orders)
    run.alerts.write_parquet(out / "rule_alerts.parquet")
    rows = trades.select(pl.len()).collect().item() + orders.select(pl.len()).collect().item()
    return {"rows": rows, "alerts": run.alerts.height}


def phase_score(out: Path) -> dict:
    import polars as pl

    from surveillance_pipeline.config import load_settings
    from surveillance_pipeline.ml.scoring import score_account_days
    from surveillance_pipeline.ml.service import registry_for

    settings = load_settings(environ={})
    features = pl.read_parquet(out / "account_features.parquet")
    registry = registry_for(settings)
    scores, scorer = score_account_days(features, settings.models, registry, settings.features.selection)
    scores.write_parquet(out / "model_scores.parquet")
    return {"rows": features.height, "source": scorer.source, "flagged": int(scores["anomalous"].sum())}


def phase_alerts(out: Path) -> dict:
    import polars as pl

    from surveillance_pipeline.config import load_settings
    from surveillance_pipeline.engine.engine import DetectionEngine

    settings = load_settings(environ={})
    trades = pl.read_parquet(out / "validated_trades" / "*.parquet")
    alerts = DetectionEngine(settings.engine).combine(
        bf.DAY, pl.read_parquet(out / "rule_alerts.parquet"), pl.read_parquet(out / "model_scores.parquet"),
        pl.read_parquet(out / "account_features.parquet"), trades, "bench")
    return {"rows": trades.height, "alerts": alerts.height}


def run_phase(name: str, folder: Path, out: Path) -> dict:
    started = time.perf_counter()
    result = {"validate": lambda: bf.phase_validate(folder, out), "features": lambda: bf.phase_features(out),
              "detect": lambda: phase_detect(out), "score": lambda: phase_score(out),
              "alerts": lambda: phase_alerts(out), "floor": lambda: bf.phase_floor(out)}[name]()
    result.update(seconds=time.perf_counter() - started, peak_rss_mb=bf.peak_rss_mb())
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trades", type=int, default=10_000_000)
    parser.add_argument("--orders", type=int, default=30_000_000)
    parser.add_argument("--phase")
    parser.add_argument("--skip-validate", action="store_true", help="reuse the validated day of an earlier run")
    args = parser.parse_args()
    folder = ROOT / "data" / "bench" / f"day-{args.trades}-{args.orders}"
    out = folder / "pipeline"
    if args.phase:
        print(json.dumps(run_phase(args.phase, folder, out), default=str))
        return
    if not (folder / "orders.parquet").exists():
        started = time.perf_counter()
        bf.generate(folder, args.trades, args.orders)
        print(f"generated {args.trades:,} trades and ~{args.orders:,} order events in "
              f"{time.perf_counter() - started:.1f} s -> {folder}")
    results = {}
    for name in PHASES:
        if name == "validate" and args.skip_validate and (out / "validated_trades").exists():
            continue
        done = subprocess.run([sys.executable, __file__, "--phase", name, "--trades", str(args.trades),
                               "--orders", str(args.orders)], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{name:<9} FAILED: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
            return
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        r = results[name]
        extra = {k: v for k, v in r.items() if k not in ("seconds", "peak_rss_mb", "rows")}
        print(f"{name:<9} {r['seconds']:8.2f} s  {r['rows'] / r['seconds']:>12,.0f} rows/s  "
              f"peak RSS {r['peak_rss_mb']:7.0f} MB  {extra}", flush=True)
    floor = results["floor"]["seconds"]
    total = sum(r["seconds"] for n, r in results.items() if n != "floor")
    print(f"end to end {total:.1f} s (max peak RSS {max(r['peak_rss_mb'] for r in results.values()):.0f} MB); "
          f"ratio to the polars floor ({floor:.2f} s): {total / floor:.0f}x")


if __name__ == "__main__":
    main()
