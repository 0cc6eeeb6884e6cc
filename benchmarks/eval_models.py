"""Models measured: test figures over several training seeds, and the same trained models on days written
independently of our scenario generator (benchmarks/eval_independent.py's episodes and look-alikes).

Part 1: for each seed, `surveillance train`'s pipeline (generated labelled days -> training set -> the three
models and the ensemble, split 70/15/15 by day) without MLflow; prints each seed's test table and the mean and
range over seeds, and recall per pattern.

Part 2: the models of the first seed score account-days of independent days (a clean background day plus
independently written abuse episodes and legitimate look-alikes, eval_independent.build_day): precision, recall,
AUC and average precision per model against the episodes' accounts, recall per pattern, and how many look-alike
accounts (market makers requoting, HFT, an arbitrageur, a news rally's buyers ...) each model flags.

Asserts nothing; changes no setting. Usage:
  .venv/bin/python benchmarks/eval_models.py [--seeds 7 8 9] [--days 10] [--independent 101 102 103 104 105]
About 2-3 minutes on 2 cores with the defaults.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from surveillance_pipeline.config import load_settings  # noqa: E402
from surveillance_pipeline.log import configure_logging  # noqa: E402
from surveillance_pipeline.ml.dataset import LABEL, PATTERNS, build_training_set  # noqa: E402
from surveillance_pipeline.ml.metrics import classification_metrics  # noqa: E402
from surveillance_pipeline.ml.scenarios import feature_days, scenario_training_data  # noqa: E402
from surveillance_pipeline.ml.trainer import ModelTrainer  # noqa: E402

METRICS = ("precision", "recall", "f1", "auc_roc", "average_precision")


def fmt(value) -> str:
    return "  n/a" if value is None else f"{value:5.2f}"


def table(rows: dict[str, dict]) -> str:
    lines = [f"  {'model':<18}" + "".join(f"{m:>19}" for m in METRICS)]
    for model, metrics in rows.items():
        lines.append(f"  {model:<18}" + "".join(f"{fmt(metrics.get(m)):>19}" for m in METRICS))
    return "\n".join(lines)


def recall_lines(rows: list[dict]) -> list[str]:
    kinds = list(dict.fromkeys(r["model"] for r in rows))
    out = [f"  {'pattern':<20}" + "".join(f"{k:>19}" for k in kinds)]
    cells = {(r["pattern"], r["model"]): r for r in rows}
    for pattern in sorted({r["pattern"] for r in rows}):
        out.append(f"  {pattern:<20}" + "".join(
            f"{cells[(pattern, k)]['found']:>10}/{cells[(pattern, k)]['account_days']:<4}"
            f"{cells[(pattern, k)]['recall']:>5.2f}" if (pattern, k) in cells else f"{'':>19}" for k in kinds))
    return out


def part1(seeds: list[int], days: int, settings):
    training = settings.models.training
    results = {}
    for seed in seeds:
        began = time.perf_counter()
        features, labels = scenario_training_data(days, seed, training.scenario_accounts,
                                                  training.scenario_trades_per_day, settings.features)
        result = ModelTrainer(settings.models, settings.features.selection).train(build_training_set(features, labels))
        results[seed] = result
        test = {kind: trained.metrics["test"] for kind, trained in result.models.items()}
        print(f"\n== seed {seed}: {days} days, test {result.prepared.days.test[0]}..{result.prepared.days.test[-1]} "
              f"({len(result.prepared.y['test'])} account-days, {int(result.prepared.y['test'].sum())} abusive), "
              f"weights {result.models['ensemble'].details['weights']}, {time.perf_counter() - began:.0f} s")
        print(table(test))
        print("\n".join(recall_lines([r for r in result.pattern_recall("test") if r["model"] in ("random_forest",
                                                                                                   "ensemble")])))
    print(f"\n== mean [min - max] over seeds {seeds} (test days)")
    kinds = list(next(iter(results.values())).models)
    for kind in kinds:
        cells = []
        for metric in METRICS:
            values = [r.models[kind].metrics["test"][metric] for r in results.values()]
            values = [v for v in values if v is not None]
            cells.append(f"{statistics.mean(values):.2f} [{min(values):.2f}-{max(values):.2f}]" if values else "n/a")
        print(f"  {kind:<18}" + "".join(f"{c:>19}" for c in cells))
    return results[seeds[0]]


def part2(result, independent_seeds: list[int], settings) -> None:
    import eval_independent as ind

    bundles = {kind: trained.bundle for kind, trained in result.models.items()}
    scores: dict[str, list[np.ndarray]] = {k: [] for k in bundles}
    ys, patterns, lookalike = [], [], []
    for seed in independent_seeds:
        trades, orders, labels, injected, _ = ind.build_day(seed, 25_000, ind.random_requests(1.0))
        features = feature_days(trades, orders, settings.features)
        table_ = build_training_set(features, labels)
        look = {u for item in injected if not item.labelled for u in item.users}
        ys.append(table_.get_column(LABEL).to_numpy())
        patterns += table_.get_column(PATTERNS).to_list()
        lookalike += [(a in look) for a in table_.get_column("account_id").to_list()]
        for kind, bundle in bundles.items():
            scores[kind].append(bundle.score_samples(table_))
        print(f"  independent day {seed}: {table_.height} account-days, {int(ys[-1].sum())} abusive, "
              f"{sum(a in look for a in table_['account_id'])} look-alike accounts")
    y = np.concatenate(ys)
    look = np.array(lookalike)
    rows, recall_rows = {}, []
    for kind, parts in scores.items():
        s = np.concatenate(parts)
        threshold = result.models[kind].metrics["test"]["threshold"]
        rows[kind] = classification_metrics(y, s, threshold)
        flagged = s >= threshold
        rows[kind]["lookalikes_flagged"] = f"{int((flagged & look & (y == 0)).sum())}/{int((look & (y == 0)).sum())}"
        counts: dict[str, list[int]] = {}
        for joined, hit in zip(patterns, flagged):
            for pattern in (joined.split(";") if joined else []):
                counts.setdefault(pattern, [0, 0])
                counts[pattern][0] += 1
                counts[pattern][1] += int(hit)
        recall_rows += [{"model": kind, "pattern": p, "account_days": n, "found": k, "recall": k / n}
                        for p, (n, k) in sorted(counts.items())]
    print(f"\n== independent days {independent_seeds}: models trained on generated seed days, scored unchanged")
    print(table(rows))
    print("  look-alike accounts (legitimate, unlabelled) flagged: " +
          ", ".join(f"{k} {r['lookalikes_flagged']}" for k, r in rows.items()))
    print("\n".join(recall_lines(recall_rows)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--independent", type=int, nargs="+", default=[101, 102, 103, 104, 105])
    args = parser.parse_args()
    settings = load_settings()
    configure_logging("WARNING")
    began = time.perf_counter()
    print("#### PART 1: generated labelled days, split by day (train / validation / test)")
    first = part1(args.seeds, args.days, settings)
    print("\n#### PART 2: independent days (eval_independent's episodes and look-alikes)")
    part2(first, args.independent, settings)
    print(f"\n{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
