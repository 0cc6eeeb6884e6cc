"""Rules alone vs the detection engine (rules + models): do the models add false alerts?

Trains the models once on generated labelled days (seed 7, as `surveillance train`), then, on days the models
have not seen, runs the rule detectors, scores every account-day with the trained ensemble and combines both
with the engine, and scores each alert set with `surveillance_pipeline.evaluation.evaluate`:
  - generated scenario days (seeds 31, 32: the same generator as training, new seeds), and
  - independently written days (benchmarks/eval_independent.py: its own episodes and legitimate look-alikes).
Prints both tables per data set, the ml_anomaly alerts (true / false, and whether a false one landed on a
look-alike), and how many rule alerts the model evidence raised to a higher risk level.

Asserts nothing. Usage: .venv/bin/python benchmarks/eval_engine.py [--independent 101 102 103] [--scenario 31 32]
About 2 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from surveillance_pipeline.config import load_settings  # noqa: E402
from surveillance_pipeline.contract import Trade  # noqa: E402
from surveillance_pipeline.detectors.base import DetectionInputs  # noqa: E402
from surveillance_pipeline.detectors.rules import RuleBasedDetector  # noqa: E402
from surveillance_pipeline.engine.engine import DetectionEngine  # noqa: E402
from surveillance_pipeline.evaluation import evaluate  # noqa: E402
from surveillance_pipeline.log import configure_logging  # noqa: E402
from surveillance_pipeline.ml.dataset import build_training_set  # noqa: E402
from surveillance_pipeline.ml.scenarios import feature_days, scenario_training_data  # noqa: E402
from surveillance_pipeline.ml.scoring import Scorer  # noqa: E402
from surveillance_pipeline.ml.trainer import ModelTrainer  # noqa: E402
from surveillance_pipeline.scenarios import ScenarioSpec, generate_scenario  # noqa: E402


def run_days(trades: pl.DataFrame, orders: pl.DataFrame, scorer: Scorer, settings) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rule alerts, engine alerts) over every day of the tape."""
    detector, engine = RuleBasedDetector(settings.detectors), DetectionEngine(settings.engine)
    stamp = pl.col(Trade.TIMESTAMP).dt.date()
    features = feature_days(trades, orders, settings.features)
    rules, combined = [], []
    for day in sorted(trades.select(stamp.unique()).to_series().to_list()):
        first = day - timedelta(days=settings.detectors.history_days)
        day_trades = trades.filter(stamp == day)
        found = detector.run(DetectionInputs(trades=day_trades, orders=orders.filter(stamp == day),
                                             history=trades.filter((stamp >= first) & (stamp < day)), day=day)).alerts
        day_features = features.filter(pl.col("date") == day)
        scores = scorer.score(day_features) if day_features.height else None
        rules.append(found)
        combined.append(engine.combine(day, found, scores, day_features, day_trades, "bench ensemble"))
    return pl.concat(rules), pl.concat(combined)


def report(name: str, rules: pl.DataFrame, combined: pl.DataFrame, labels: pl.DataFrame, trades: int, settings,
           lookalike_accounts: set[str] | None = None) -> None:
    print(f"\n== {name}: rules alone")
    print(evaluate(rules, labels, settings.evaluation, trade_count=trades).format_table())
    print(f"\n== {name}: engine (rules + models)")
    print(evaluate(combined, labels, settings.evaluation, trade_count=trades).format_table())
    ml = combined.filter(pl.col("pattern") == "ml_anomaly")
    if ml.height:
        judged = evaluate(ml, labels, settings.evaluation)
        print(f"  ml_anomaly alerts: {ml.height}, true {judged.true_alerts}, false {ml.height - judged.true_alerts}")
        if lookalike_accounts:
            on_look = ml.filter(pl.col("user_ids").is_in(list(lookalike_accounts))).height
            print(f"  ... of which on legitimate look-alike accounts: {on_look}")
    else:
        print("  ml_anomaly alerts: 0")
    raised = combined.filter(pl.col("sources") == "rules;models").height
    print(f"  rule alerts with model evidence: {raised} of {combined.filter(pl.col('sources') != 'models').height}")
    levels = {r: combined.filter(pl.col("risk_level") == r).height for r in ("HIGH", "MEDIUM", "LOW")}
    print(f"  risk levels after the engine: {levels}; rules alone: "
          f"{ {r: rules.filter(pl.col('risk_level') == r).height for r in ('HIGH', 'MEDIUM', 'LOW')} }")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=int, nargs="+", default=[31, 32])
    parser.add_argument("--independent", type=int, nargs="+", default=[101, 102, 103])
    args = parser.parse_args()
    settings = load_settings()
    configure_logging("WARNING")
    began = time.perf_counter()
    training = settings.models.training
    features, labels = scenario_training_data(training.scenario_days, 7, training.scenario_accounts,
                                              training.scenario_trades_per_day, settings.features)
    result = ModelTrainer(settings.models, settings.features.selection).train(build_training_set(features, labels))
    scorer = Scorer(result.models["ensemble"].bundle, "champion", {"bench": "seed 7"})
    print(f"models trained on seed 7 ({training.scenario_days} days) in {time.perf_counter() - began:.0f} s; "
          f"weights {result.models['ensemble'].details['weights']}")
    for seed in args.scenario:
        scenario = generate_scenario(ScenarioSpec(days=2, seed=seed, accounts=training.scenario_accounts,
                                                  trades_per_day=training.scenario_trades_per_day))
        rules, combined = run_days(scenario.trades, scenario.orders, scorer, settings)
        report(f"generated scenario seed {seed} (2 days)", rules, combined, scenario.labels,
               scenario.trades.height, settings)
    import eval_independent as ind

    all_rules, all_combined, all_labels, looks, count = [], [], [], set(), 0
    for seed in args.independent:
        trades, orders, labels_, injected, _ = ind.build_day(seed, 25_000, ind.random_requests(1.0))
        rules, combined = run_days(trades, orders, scorer, settings)
        all_rules.append(rules)
        all_combined.append(combined)
        all_labels.append(labels_)
        looks |= {u for item in injected if not item.labelled for u in item.users}
        count += trades.height
    report(f"independent days {args.independent}", pl.concat(all_rules), pl.concat(all_combined),
           pl.concat(all_labels), count, settings, looks)
    print(f"\n{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
