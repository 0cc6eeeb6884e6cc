"""A replay store from the real samples in ../shared/data/real_samples: Binance USDT-M BTCUSDT trades and
order-book snapshots (tardis.dev, 2020-02-22) and XRPUSDT 8-hourly funding rates and mark prices (2021-11)."""
from __future__ import annotations

from pathlib import Path

import polars as pl

from surveillance_pipeline.market.replay import UTC_MS, ReplayStore

FILES = {
    "trades": "tardis_binance-futures_BTCUSDT_trades_2020-02-22.csv.gz",
    "book": "tardis_binance-futures_book_snapshot_25_BTCUSDT.csv",
    "funding": "futures_XRP_USDT_USDT-8h-funding_rate.feather",
    "mark": "futures_XRP_USDT_USDT-8h-mark.feather",
}


def from_real_samples(folder: Path) -> ReplayStore:
    folder = Path(folder)
    missing = [name for name in FILES.values() if not (folder / name).exists()]
    if missing:
        raise FileNotFoundError(f"{folder}: missing {missing}")
    trades = pl.read_csv(folder / FILES["trades"])
    deals = trades.select(
        pl.col("symbol").alias("market"), pl.lit("futures").alias("market_type"),
        (pl.col("timestamp") // 1000).cast(UTC_MS).alias("created_at"), pl.col("id").cast(pl.String).alias("deal_id"),
        "side", pl.col("price").cast(pl.Float64), pl.col("amount").cast(pl.Float64))
    book = pl.read_csv(folder / FILES["book"])
    levels = []
    for side in ("asks", "bids"):
        for level in range(25):
            levels.append(book.select(
                pl.col("symbol").alias("market"), pl.lit("futures").alias("market_type"),
                (pl.col("timestamp") // 1000).cast(UTC_MS).alias("updated_at"), pl.lit(side[:-1]).alias("side"),
                pl.lit(level, pl.Int32).alias("level"), pl.col(f"{side}[{level}].price").cast(pl.Float64).alias("price"),
                pl.col(f"{side}[{level}].amount").cast(pl.Float64).alias("amount")))
    funding = pl.read_ipc(folder / FILES["funding"]).select(
        pl.lit("XRPUSDT").alias("market"), pl.lit("futures").alias("market_type"),
        pl.col("date").dt.cast_time_unit("ms").alias("funding_time"),
        pl.col("open").alias("theoretical_funding_rate"), pl.col("open").alias("actual_funding_rate"))
    mark = pl.read_ipc(folder / FILES["mark"]).select(
        pl.lit("XRPUSDT").alias("market"), pl.lit("futures").alias("market_type"),
        pl.col("date").dt.cast_time_unit("ms").alias("created_at"), pl.col("close").alias("mark_price"))
    return ReplayStore({"deals": deals, "depth": pl.concat(levels), "funding": funding, "mark": mark})
