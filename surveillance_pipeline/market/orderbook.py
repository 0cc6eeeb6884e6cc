"""Order-book and k-line analysis for the futures features: book imbalance, large resting levels ("walls")
that vanish between snapshots without the price reaching them, and k-line shapes (long wicks, volume spikes).

A wall is a level at least `wall_multiple` times the median level size of its snapshot, within the top
`depth` levels. It vanished when the next snapshot of the market no longer shows a level of at least half that
size at that price while the best price on that side stayed away from it (not filled, withdrawn: the trace of
an order shown to move others and pulled)."""
from __future__ import annotations

import polars as pl


def book_imbalance(depth: pl.DataFrame, levels: int = 10) -> pl.DataFrame:
    """Per market and snapshot: (bid size - ask size) / (bid size + ask size) over the top `levels`."""
    top = depth.filter(pl.col("level") < levels)
    sides = top.group_by("market", "updated_at").agg(
        pl.col("amount").filter(pl.col("side") == "bid").sum().alias("bids"),
        pl.col("amount").filter(pl.col("side") == "ask").sum().alias("asks"))
    return sides.with_columns(((pl.col("bids") - pl.col("asks")) / (pl.col("bids") + pl.col("asks")))
                              .alias("imbalance")).sort("market", "updated_at")


def vanished_walls(depth: pl.DataFrame, wall_multiple: float = 5.0, levels: int = 20) -> pl.DataFrame:
    """Walls present in one snapshot and gone in the market's next one, the price not having reached them."""
    top = depth.filter(pl.col("level") < levels)
    walls = top.with_columns(pl.col("amount").median().over("market", "updated_at").alias("median_size")).filter(
        pl.col("amount") >= wall_multiple * pl.col("median_size"))
    snapshots = top.select("market", "updated_at").unique().sort("market", "updated_at").with_columns(
        pl.col("updated_at").shift(-1).over("market").alias("next_at"))
    walls = walls.join(snapshots, on=["market", "updated_at"]).drop_nulls("next_at")
    best = top.filter(pl.col("level") == 0).select("market", pl.col("updated_at").alias("next_at"), "side",
                                                    pl.col("price").alias("next_best"))
    later = top.select("market", pl.col("updated_at").alias("next_at"), "side", "price",
                       pl.col("amount").alias("next_amount"))
    joined = (walls.join(best, on=["market", "next_at", "side"], how="left")
              .join(later, on=["market", "next_at", "side", "price"], how="left"))
    reached = pl.when(pl.col("side") == "bid").then(pl.col("next_best") <= pl.col("price")).otherwise(
        pl.col("next_best") >= pl.col("price"))
    gone = pl.col("next_amount").is_null() | (pl.col("next_amount") < 0.5 * pl.col("amount"))
    return joined.filter(gone & ~reached.fill_null(False)).select(
        "market", "side", "price", "amount", "median_size", pl.col("updated_at").alias("seen_at"),
        pl.col("next_at").alias("gone_at"))


def kline_shapes(bars: pl.DataFrame) -> pl.DataFrame:
    """Per market: the longest wick relative to the bar's body range (a spike given back within the minute) and
    the largest volume against the market's median bar volume."""
    span = (pl.col("high") - pl.col("low"))
    wick = pl.max_horizontal(pl.col("high") - pl.max_horizontal("open", "close"),
                             pl.min_horizontal("open", "close") - pl.col("low"))
    return bars.group_by("market").agg(
        (wick / pl.when(span > 0).then(span)).max().alias("max_wick_share"),
        (pl.col("volume") / pl.col("volume").median()).max().alias("volume_spike_ratio"))
