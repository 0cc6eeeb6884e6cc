"""Behaviour features: FIFO round trips (holding time, win rate), diversity and activity velocity.

Round trips are matched per account x symbol over the day, FIFO by units: the k-th unit bought is matched
with the k-th unit sold, whichever came first (a short sale opens a round trip too). The day starts flat:
positions carried from earlier days are not known. Without loops: the cumulative bought and cumulative
sold quantities cut the quantity axis into segments; each segment lies inside exactly one buy fill and one
sell fill, the first of each side whose cumulative quantity reaches the segment's end (a sort and a backward
fill: O(n log n)). Cumulative quantities are rounded to 1e-9 units so that float summation slivers do not
become matches. Fills at the same time queue in trade id order. Holding time and win rate are quantity-weighted
(per unit matched), so they do not depend on how an order happened to be split into fills.
"""
from __future__ import annotations

from datetime import timedelta

import polars as pl

from surveillance_pipeline.features.base import ACCOUNT, FeatureInputs, FeatureSpec, Fill

GROUP = "behaviour"
FEATURES = [
    FeatureSpec("holding_time_median_s", "s", "quantity-weighted (lower) median holding time of the day's FIFO "
                "round trips over all the account's symbols: the smallest h such that at least half the matched "
                "quantity was held <= h; holding = |sell time - buy time| of the matched units; null without "
                "round trips", GROUP),
    FeatureSpec("round_trip_win_rate", "share", "share of the FIFO round-trip quantity whose sell price is above "
                "its buy price (ties are not wins); null without round trips", GROUP),
    FeatureSpec("symbols_traded", "symbols", "distinct symbols the account had fills in during the day", GROUP),
    FeatureSpec("activity_velocity", "ratio", "(fills on the day - mean daily fills) / (mean daily fills + 1), "
                "the mean over the days of the look-back window before the day (features.lookback_days - 1 "
                "days) that hold account-attributed fills, days without this account's fills counting 0; with "
                "no such day the mean is 0, i.e. fills on the day / 1", GROUP),
]

_QUANTITY_DECIMALS = 9


def _pair() -> pl.Expr:
    """The account x symbol pair as a 64-bit hash: integer sorts and windows are several times faster than
    string ones (a collision, odds ~n^2 / 2^65, would merge two pairs' queues)."""
    return pl.struct(ACCOUNT, Fill.SYMBOL).hash().alias("pair")


def _cumulative(fills: pl.LazyFrame, direction: int, prefix: str) -> pl.LazyFrame:
    """One side's fills with their cumulative quantity per account x symbol (time, then trade id order)."""
    return (
        fills.filter((pl.col(Fill.DIRECTION) == direction) & (pl.col(Fill.QUANTITY) > 0))
        .select("pair", Fill.TIMESTAMP, Fill.TRADE_ID, Fill.PRICE, Fill.QUANTITY)
        .sort("pair", Fill.TIMESTAMP, Fill.TRADE_ID)
        .select("pair",
                pl.col(Fill.QUANTITY).cum_sum().over("pair").round(_QUANTITY_DECIMALS).alias("cum"),
                pl.col(Fill.TIMESTAMP).alias(f"{prefix}_time"), pl.col(Fill.PRICE).alias(f"{prefix}_price"))
    )


def round_trips(fills: pl.LazyFrame) -> pl.LazyFrame:
    """FIFO matches: account, symbol, matched quantity, buy/sell time and price, holding_s, win.

    The cumulative quantities of both sides, merged and sorted per pair, are the segment ends; a segment
    ending at x belongs to the first buy and the first sell whose cumulative quantity is >= x (a backward
    fill along the sorted ends), and only segments up to min(bought, sold) are matched.
    """
    fills = fills.select(ACCOUNT, Fill.SYMBOL, Fill.TIMESTAMP, Fill.TRADE_ID, Fill.PRICE, Fill.QUANTITY,
                         Fill.DIRECTION).with_columns(_pair())
    buys, sells = _cumulative(fills, 1, "buy"), _cumulative(fills, -1, "sell")
    cum, pair = pl.col("cum"), pl.col("pair")
    matched = pl.min_horizontal(*[pl.when(pl.col(f"{side}_time").is_not_null()).then(cum).max().fill_null(0.0)
                                  for side in ("buy", "sell")])  # before the backward fill
    # A buy and a sell can end at the same cumulative quantity: one row per (pair, end).
    ends = pl.concat([buys, sells], how="diagonal").group_by("pair", "cum").agg(pl.all().max())
    trips = (
        ends.with_columns(matched.over("pair").alias("matched"))
        .sort("pair", "cum")
        .with_columns(pl.col("buy_time", "buy_price", "sell_time", "sell_price").backward_fill(),
                      pl.when(pair == pair.shift()).then(cum.shift()).otherwise(0.0).alias("previous"))
        .filter(cum <= pl.col("matched"))  # past min(bought, sold) the fill could reach into the next pair
    )
    # The pair's account and symbol: a join with the few distinct pairs, not with every fill.
    pairs = fills.select("pair", ACCOUNT, Fill.SYMBOL).unique("pair")
    return trips.join(pairs, on="pair", how="inner").select(
        ACCOUNT, Fill.SYMBOL, (cum - pl.col("previous")).alias("quantity"),
        "buy_time", "buy_price", "sell_time", "sell_price",
        ((pl.col("sell_time") - pl.col("buy_time")).dt.total_microseconds().abs() / 1e6).alias("holding_s"),
        (pl.col("sell_price") > pl.col("buy_price")).alias("win"),
    )


def _round_trip_features(fills: pl.LazyFrame) -> pl.LazyFrame:
    quantity = pl.col("quantity")
    reached_half = quantity.cum_sum().over(ACCOUNT) >= quantity.sum().over(ACCOUNT) * (0.5 - 1e-12)
    return (
        # Sorted by the account's code, not its name: only the order within an account matters.
        round_trips(fills).select(ACCOUNT, "quantity", "holding_s", "win")
        .sort(pl.col(ACCOUNT).to_physical(), "holding_s")
        .with_columns(reached_half.alias("reached_half"))
        .group_by(ACCOUNT).agg(
            pl.when(pl.col("reached_half")).then(pl.col("holding_s")).min().alias("holding_time_median_s"),
            ((quantity * pl.col("win")).sum() / quantity.sum()).alias("round_trip_win_rate"))
    )


def _velocity(inputs: FeatureInputs, day: pl.LazyFrame) -> pl.LazyFrame:
    window_start = inputs.start - timedelta(days=inputs.settings.lookback_days - 1)
    timestamp = pl.col(Fill.TIMESTAMP)
    history = inputs.history_fills.filter((timestamp >= window_start) & (timestamp < inputs.start))
    days = history.select(timestamp.dt.date().n_unique().alias("history_days"))
    counts = history.group_by(ACCOUNT).agg(pl.len().alias("history_fills"))
    mean = (pl.col("history_fills").fill_null(0) / pl.col("history_days")).fill_nan(0.0).fill_null(0.0)
    return (
        day.join(counts, on=ACCOUNT, how="left").join(days, how="cross")
        .select(ACCOUNT, ((pl.col("fills_day") - mean) / (mean + 1)).alias("activity_velocity"))
    )


def behaviour_features(inputs: FeatureInputs) -> pl.LazyFrame:
    fills = inputs.fills
    day = fills.group_by(ACCOUNT).agg(pl.len().alias("fills_day"),
                                      pl.col(Fill.SYMBOL).n_unique().alias("symbols_traded"))
    result = (
        day.join(_round_trip_features(fills), on=ACCOUNT, how="left")
        .join(_velocity(inputs, day.select(ACCOUNT, "fills_day")), on=ACCOUNT, how="left")
    )
    return result.select(ACCOUNT, *[feature.name for feature in FEATURES])
