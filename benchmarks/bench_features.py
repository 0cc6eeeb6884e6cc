"""Validate -> features on one big day (default 10 M trades, 30 M order events), against the polars floor.

The day is generated once (numpy, seeded) as contract Parquet under data/bench/ and reused. Each phase runs
in its own process so its peak RSS is its own. Prints figures; asserts nothing.
Usage: python benchmarks/bench_features.py [--trades 10000000] [--orders 30000000]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DAY = date(2026, 3, 2)


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def generate(folder: Path, n_trades: int, n_orders: int, seed: int = 11) -> None:
    import numpy as np
    import polars as pl

    from surveillance_pipeline.contract import ORDER_SCHEMA, TRADE_SCHEMA

    rng = np.random.default_rng(seed)
    start = int(datetime.combine(DAY, datetime.min.time(), tzinfo=timezone.utc).timestamp() * 1e6)
    symbols = np.array([f"S{i:02d}USDT" for i in range(20)])
    accounts = 20_000
    stamp = np.sort(rng.integers(start, start + 86_400_000_000 - 5_000_000, n_trades))
    symbol = rng.integers(0, len(symbols), n_trades)
    price = 100 * np.exp(np.cumsum(rng.normal(0, 2e-4, n_trades)))  # one walk shared by all symbols, scaled
    price = np.round(price * (1 + symbol), 4)
    buyer = rng.zipf(1.6, n_trades) % accounts
    seller = (buyer + 1 + rng.integers(0, accounts - 1, n_trades)) % accounts
    taker_buys = rng.random(n_trades) < 0.5
    ids = pl.Series(np.arange(n_trades)).cast(pl.String)
    trades = pl.DataFrame({
        "trade_id": ids, "timestamp": stamp, "symbol": symbols[symbol], "side": np.where(taker_buys, "buy", "sell"),
        "price": price, "quantity": np.round(rng.lognormal(0, 1, n_trades), 4),
        "buyer_id": pl.Series(buyer).cast(pl.String), "seller_id": pl.Series(seller).cast(pl.String),
        "buyer_order_id": ("b" + ids), "seller_order_id": ("s" + ids),
        "market_type": "spot", "quote_quantity": None, "fee": None,
    }).with_columns(pl.col("timestamp").cast(pl.Datetime("us", "UTC")),
                    ("a" + pl.col("buyer_id")).alias("buyer_id"), ("a" + pl.col("seller_id")).alias("seller_id"))
    trades = trades.cast(TRADE_SCHEMA)
    folder.mkdir(parents=True, exist_ok=True)
    trades.write_parquet(folder / "trades.parquet")
    # Orders: a `new` for both orders of every trade, then quotes that are placed and cancelled.
    placed = pl.concat([
        trades.select(pl.col("buyer_order_id").alias("order_id"), (pl.col("timestamp") - timedelta(milliseconds=5)),
                      pl.col("buyer_id").alias("user_id"), "symbol", pl.lit("buy").alias("side"), "price", "quantity"),
        trades.select(pl.col("seller_order_id").alias("order_id"), (pl.col("timestamp") - timedelta(milliseconds=5)),
                      pl.col("seller_id").alias("user_id"), "symbol", pl.lit("sell").alias("side"), "price",
                      "quantity"),
    ]).with_columns(pl.lit("new").alias("event"))
    quotes = max(0, (n_orders - placed.height) // 2)
    q_stamp = rng.integers(start, start + 86_400_000_000 - 5_000_000, quotes)
    q_ids = "q" + pl.Series(np.arange(quotes)).cast(pl.String)
    q_symbol = rng.integers(0, len(symbols), quotes)
    quote_new = pl.DataFrame({
        "order_id": q_ids, "timestamp": q_stamp, "user_id": "a" + pl.Series(rng.integers(0, 50, quotes)).cast(pl.String),
        "symbol": symbols[q_symbol], "side": np.where(rng.random(quotes) < 0.5, "buy", "sell"),
        "price": np.round(100 * (1 + q_symbol) * (1 + rng.normal(0, 1e-3, quotes)), 4),
        "quantity": np.round(rng.lognormal(0, 1, quotes), 4), "event": "new",
    }).with_columns(pl.col("timestamp").cast(pl.Datetime("us", "UTC")))
    quote_cancel = quote_new.with_columns(
        (pl.col("timestamp") + pl.duration(microseconds=pl.lit(rng.integers(1_000, 3_000_000, quotes)))),
        pl.lit("cancel").alias("event"))
    orders = pl.concat([placed.cast({"timestamp": pl.Datetime("us", "UTC")}), quote_new, quote_cancel],
                       how="diagonal_relaxed").with_columns(
        pl.lit("limit").alias("order_type"), pl.lit("spot").alias("market_type")).select(list(ORDER_SCHEMA))
    orders.cast(ORDER_SCHEMA).sort("timestamp").write_parquet(folder / "orders.parquet")


def phase_validate(folder: Path, out: Path) -> dict:
    from surveillance_pipeline.config import load_settings
    from surveillance_pipeline.ingest.importer import ImportOptions
    from surveillance_pipeline.ingest.landing import PartWriter, stage_raw_files, validate_staged
    from surveillance_pipeline.contract import ORDER_SCHEMA, REJECT_SCHEMA, TRADE_SCHEMA

    settings = load_settings(environ={})
    shutil.rmtree(out, ignore_errors=True)
    rows = 0
    for kind, schema in (("trades", TRADE_SCHEMA), ("orders", ORDER_SCHEMA)):
        staged = stage_raw_files([folder / f"{kind}.parquet"], ImportOptions(kind=kind), settings, out / f"raw_{kind}")
        accepted = PartWriter(out / f"validated_{kind}", schema)
        rejects = PartWriter(out / f"rejects_{kind}", REJECT_SCHEMA)
        validate_staged(staged.scan(), DAY, kind, settings, accepted, rejects)
        rows += staged.rows
    return {"rows": rows}


def phase_features(out: Path) -> dict:
    import polars as pl

    from surveillance_pipeline.config import load_settings
    from surveillance_pipeline.features.account import account_feature_table
    from surveillance_pipeline.features.base import FeatureInputs
    from surveillance_pipeline.features.market import market_features

    settings = load_settings(environ={})
    trades = pl.scan_parquet(out / "validated_trades" / "*.parquet")
    orders = pl.scan_parquet(out / "validated_orders" / "*.parquet")
    inputs = FeatureInputs(day=DAY, trades=trades, orders=orders, settings=settings.features)
    accounts = account_feature_table(inputs)
    accounts.write_parquet(out / "account_features.parquet")  # read by bench_e2e.py's later phases
    bars = market_features(inputs).collect()
    return {"rows": trades.select(pl.len()).collect().item() + orders.select(pl.len()).collect().item(),
            "accounts": accounts.height, "bars": bars.height}


def phase_floor(out: Path) -> dict:
    import polars as pl

    trades = pl.scan_parquet(out / "validated_trades" / "*.parquet")
    orders = pl.scan_parquet(out / "validated_orders" / "*.parquet")
    by_buyer = trades.group_by("buyer_id").agg(pl.len(), pl.col("quantity").sum()).collect()
    by_user = orders.group_by("user_id").agg(pl.len(), pl.col("quantity").sum()).collect()
    return {"rows": int(by_buyer["len"].sum() + by_user["len"].sum())}


def run_phase(name: str, folder: Path, out: Path) -> dict:
    started = time.perf_counter()
    result = {"validate": lambda: phase_validate(folder, out), "features": lambda: phase_features(out),
              "floor": lambda: phase_floor(out)}[name]()
    result.update(seconds=time.perf_counter() - started, peak_rss_mb=peak_rss_mb())
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trades", type=int, default=10_000_000)
    parser.add_argument("--orders", type=int, default=30_000_000)
    parser.add_argument("--phase")
    args = parser.parse_args()
    folder = ROOT / "data" / "bench" / f"day-{args.trades}-{args.orders}"
    out = folder / "pipeline"
    if args.phase:
        print(json.dumps(run_phase(args.phase, folder, out)))
        return
    if not (folder / "orders.parquet").exists():
        started = time.perf_counter()
        generate(folder, args.trades, args.orders)
        print(f"generated {args.trades:,} trades and ~{args.orders:,} order events in "
              f"{time.perf_counter() - started:.1f} s -> {folder}")
    results = {}
    for name in ("validate", "features", "floor"):
        done = subprocess.run([sys.executable, __file__, "--phase", name, "--trades", str(args.trades),
                               "--orders", str(args.orders)], check=True, capture_output=True, text=True)
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        r = results[name]
        print(f"{name:<9} {r['seconds']:8.2f} s  {r['rows'] / r['seconds']:>12,.0f} rows/s  "
              f"peak RSS {r['peak_rss_mb']:7.0f} MB  {({k: v for k, v in r.items() if k in ('accounts', 'bars')})}")
    floor = results["floor"]["seconds"]
    print(f"ratio to the polars floor ({floor:.2f} s: scan_parquet + group_by(account).agg(count, sum)): "
          f"features {results['features']['seconds'] / floor:.1f}x, "
          f"validate + features {(results['validate']['seconds'] + results['features']['seconds']) / floor:.1f}x")


if __name__ == "__main__":
    main()
