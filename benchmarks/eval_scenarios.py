"""Detection quality of the rule detectors on generated labelled scenarios: several seeds and scales.

For each (seed, scale) a labelled scenario and a clean one (same seed, no episodes) are generated, the
`RuleBasedDetector` runs day by day (earlier days as history), and `surveillance_pipeline.evaluation` scores
the alerts: recall, precision and alerts per found episode per pattern, false alerts per 100k trades on the
clean days. Prints the tables and a pooled summary; writes everything as JSON. Asserts nothing.

Usage: python benchmarks/eval_scenarios.py [--seeds 1 2 3] [--days 2] [--scales 20000 60000] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from surveillance_pipeline.config import load_settings  # noqa: E402
from surveillance_pipeline.contract import Trade  # noqa: E402
from surveillance_pipeline.detectors.base import DetectionInputs  # noqa: E402
from surveillance_pipeline.detectors.rules import RuleBasedDetector  # noqa: E402
from surveillance_pipeline.evaluation import evaluate  # noqa: E402
from surveillance_pipeline.scenarios import ScenarioSpec, generate_scenario  # noqa: E402


def detect_days(detector: RuleBasedDetector, trades: pl.DataFrame, orders: pl.DataFrame,
                history_days: int) -> pl.DataFrame:
    """Alerts of every day of a scenario, each day run as the daily asset runs it."""
    stamp = pl.col(Trade.TIMESTAMP).dt.date()
    days = trades.select(stamp.unique().sort()).to_series().to_list()
    alerts = []
    for day in days:
        first = day - timedelta(days=history_days)
        inputs = DetectionInputs(trades=trades.filter(stamp == day), orders=orders.filter(stamp == day),
                                 history=trades.filter((stamp >= first) & (stamp < day)), day=day)
        alerts.append(detector.run(inputs).alerts)
    return pl.concat(alerts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--scales", type=int, nargs="+", default=[20_000, 60_000],
                        help="background trades per day")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "eval" / "scenarios.json")
    args = parser.parse_args()
    settings = load_settings()
    detector = RuleBasedDetector(settings.detectors)
    runs, pooled_alerts, pooled_labels = [], [], []
    for scale in args.scales:
        for seed in args.seeds:
            spec = ScenarioSpec(days=args.days, seed=seed, trades_per_day=scale, accounts=max(200, scale // 100))
            started = time.perf_counter()
            scenario = generate_scenario(spec)
            alerts = detect_days(detector, scenario.trades, scenario.orders, settings.detectors.history_days)
            report = evaluate(alerts, scenario.labels, settings.evaluation, trade_count=scenario.trades.height)
            clean = generate_scenario(ScenarioSpec(days=args.days, seed=seed, trades_per_day=scale,
                                                   accounts=spec.accounts, clean=True))
            clean_alerts = detect_days(detector, clean.trades, clean.orders, settings.detectors.history_days)
            clean_report = evaluate(clean_alerts, scenario.labels.clear(), settings.evaluation,
                                    trade_count=clean.trades.height)
            seconds = time.perf_counter() - started
            tag = f"seed {seed}, {scale:,} trades/day x {args.days} days"
            print(f"\n== {tag}: {scenario.trades.height:,} trades, {scenario.orders.height:,} order events, "
                  f"{seconds:.1f} s")
            print(report.format_table())
            print(f"clean: {clean_report.false_alerts} false alerts on {clean.trades.height:,} trades = "
                  f"{clean_report.false_alerts_per_100k_trades:.2f} per 100k trades "
                  f"{dict(clean_alerts.group_by('pattern').len().iter_rows()) if clean_alerts.height else {}}")
            runs.append({"seed": seed, "scale": scale, "days": args.days, "report": report.to_dict(),
                         "clean": clean_report.to_dict()})
            # pooled: episode and alert ids made unique per run
            run_id = f"s{seed}-n{scale}-"
            pooled_labels.append(scenario.labels.with_columns((run_id + pl.col("episode_id")).alias("episode_id"),
                                                              (run_id + pl.col("symbol")).alias("symbol")))
            pooled_alerts.append(alerts.with_columns((run_id + pl.col("alert_id")).alias("alert_id"),
                                                     (run_id + pl.col("symbol")).alias("symbol")))
    pooled = evaluate(pl.concat(pooled_alerts), pl.concat(pooled_labels), settings.evaluation)
    print(f"\n== pooled over {len(runs)} runs")
    print(pooled.format_table())
    worst_clean = max(r["clean"]["totals"]["false_alerts_per_100k_trades"] or 0.0 for r in runs)
    print(f"worst clean day: {worst_clean:.2f} false alerts per 100k trades")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs, "pooled": pooled.to_dict()}, indent=2, default=str))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
