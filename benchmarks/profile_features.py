"""Where the feature time goes: each account-feature calculator and the market bars, one at a time, on the
validated big day that `bench_features.py` leaves in data/bench/. Prints wall time, CPU time (all threads;
steadier than wall time on a shared machine) and peak RSS per calculator. Asserts nothing.

Usage: python benchmarks/profile_features.py [--trades 10000000] [--orders 30000000] [--only name,name]
       (names: fills, frequency, volume, temporal, price_impact, behaviour, counterparty, order_intent, market)
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from surveillance_pipeline.config import load_settings  # noqa: E402
from surveillance_pipeline.features.account import CALCULATORS  # noqa: E402
from surveillance_pipeline.features.base import FeatureInputs  # noqa: E402
from surveillance_pipeline.features.market import market_features  # noqa: E402

DAY = date(2026, 3, 2)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakWatcher:
    """The highest RSS seen since the last reset, sampled every 20 ms."""

    def __init__(self) -> None:
        self.peak = 0.0
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mb())
            time.sleep(0.02)

    def reset(self) -> None:
        self.peak = rss_mb()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trades", type=int, default=10_000_000)
    parser.add_argument("--orders", type=int, default=30_000_000)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    folder = ROOT / "data" / "bench" / f"day-{args.trades}-{args.orders}" / "pipeline"
    if not (folder / "validated_trades").exists():
        sys.exit(f"{folder} not found: run benchmarks/bench_features.py --trades {args.trades} "
                 f"--orders {args.orders} first")
    only = {name for name in args.only.split(",") if name}
    inputs = FeatureInputs(day=DAY, trades=pl.scan_parquet(folder / "validated_trades" / "*.parquet"),
                           orders=pl.scan_parquet(folder / "validated_orders" / "*.parquet"),
                           settings=load_settings(environ={}).features)
    steps = [("fills", lambda: inputs.fills)]
    steps += [(calc.__name__.removesuffix("_features"), lambda calc=calc: calc(inputs).collect())
              for calc, _ in CALCULATORS]
    steps.append(("market", lambda: market_features(inputs).collect()))
    watcher = PeakWatcher()
    print(f"{'step':<14} {'wall s':>8} {'cpu s':>8} {'peak RSS MB':>12}")
    for name, run in steps:
        if only and name not in only and name != "fills":
            continue
        watcher.reset()
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"{name:<14} {wall:8.1f} {cpu:8.1f} {watcher.peak:12.0f}", flush=True)


if __name__ == "__main__":
    main()
