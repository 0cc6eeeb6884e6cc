"""Hourly activity per symbol (and per account) from trades: the time series the reports draw alerts on."""
from __future__ import annotations

import polars as pl

from surveillance_pipeline.contract import Trade

ACTIVITY_SCHEMA = {"symbol": pl.String, "hour": pl.Datetime("us", "UTC"), "trades": pl.Int64,
                   "volume": pl.Float64, "accounts": pl.Int64}


def _quote(trades: pl.LazyFrame | pl.DataFrame) -> pl.Expr:
    names = trades.collect_schema().names() if isinstance(trades, pl.LazyFrame) else trades.columns
    price_qty = pl.col(Trade.PRICE) * pl.col(Trade.QUANTITY)
    return pl.coalesce(pl.col(Trade.QUOTE_QUANTITY), price_qty) if Trade.QUOTE_QUANTITY in names else price_qty


def hourly_activity(trades: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """symbol, hour, trades, quote volume and distinct accounts (buyers and sellers) per hour."""
    lazy = trades.lazy()
    hour = pl.col(Trade.TIMESTAMP).dt.truncate("1h").alias("hour")
    accounts = pl.concat_list(Trade.BUYER_ID, Trade.SELLER_ID).explode().drop_nulls().n_unique()
    frame = (lazy.group_by(Trade.SYMBOL, hour)
             .agg(pl.len().alias("trades"), _quote(trades).sum().alias("volume"), accounts.alias("accounts"))
             .sort(Trade.SYMBOL, "hour").collect())
    return frame.cast(ACTIVITY_SCHEMA)


def account_activity(trades: pl.LazyFrame | pl.DataFrame, account: str) -> pl.DataFrame:
    """The same series for the trades one account took part in (as buyer or seller)."""
    mine = trades.lazy().filter((pl.col(Trade.BUYER_ID) == account) | (pl.col(Trade.SELLER_ID) == account))
    return hourly_activity(mine)
