"""Frequency features: how often an account trades and sends, cancels and bursts orders."""
from __future__ import annotations

import polars as pl

from surveillance_pipeline.contract import Order, OrderEvent
from surveillance_pipeline.features.base import ACCOUNT, FeatureInputs, FeatureSpec, Fill

GROUP = "frequency"
FEATURES = [
    FeatureSpec("trades_day", "fills", "fills the account took part in during the day", GROUP),
    FeatureSpec("trades_week", "fills", "fills over the look-back window (the day included)", GROUP),
    FeatureSpec("max_trades_per_hour", "fills", "most fills in one clock hour of the day", GROUP),
    FeatureSpec("order_to_trade_ratio", "ratio", "new orders per fill (new orders when there is no fill)", GROUP),
    FeatureSpec("cancel_rate", "share", "cancelled orders / new orders", GROUP),
    FeatureSpec("max_orders_per_second", "messages", "most order messages (new, cancel, modify) in one second: "
                "the quote-stuffing signal", GROUP),
    FeatureSpec("max_orders_per_minute", "messages", "most order messages in one clock minute", GROUP),
    FeatureSpec("cancel_latency_median_ms", "ms", "median time from an order to its cancel", GROUP),
    FeatureSpec("fast_cancel_share", "share", "cancels that came within features.fast_cancel_ms of the order",
                GROUP),
]


def _bucket(every_us: int, time: str) -> pl.Expr:
    """The clock bucket (second, minute, hour) of a time, as an integer: cheaper to hash than `dt.truncate`."""
    return pl.col(time).dt.epoch("us").floordiv(every_us)


SECOND_US, MINUTE_US, HOUR_US = 1_000_000, 60_000_000, 3_600_000_000


def _trade_counts(inputs: FeatureInputs) -> pl.LazyFrame:
    # one pass over the fills: counts per account x hour, then their sum (the day) and max
    day_and_hour = (
        inputs.fills.group_by(ACCOUNT, _bucket(HOUR_US, Fill.TIMESTAMP).alias("hour"))
        .agg(pl.len().alias("n"))
        .group_by(ACCOUNT).agg(pl.col("n").sum().cast(pl.UInt32).alias("trades_day"),
                               pl.col("n").max().alias("max_trades_per_hour"))
    )
    week = (
        pl.concat([inputs.history_fills.select(ACCOUNT), inputs.fills.select(ACCOUNT)])
        .group_by(ACCOUNT).agg(pl.len().alias("trades_week"))
    )
    return day_and_hour.join(week, on=ACCOUNT, how="left")


def _order_counts(inputs: FeatureInputs) -> pl.LazyFrame:
    events = inputs.order_events
    event = pl.col(Order.EVENT)
    # one pass over the events: per account x second, the order messages (new, cancel, modify: not fills)
    # and the new orders and cancels; minutes are sums of their seconds
    per_second = events.group_by(ACCOUNT, _bucket(SECOND_US, Order.TIMESTAMP).alias("second")).agg(
        (event != OrderEvent.FILL.value).sum().alias("n"),
        (event == OrderEvent.NEW.value).sum().alias("new_orders"),
        (event == OrderEvent.CANCEL.value).sum().alias("cancels"),
    )
    per_minute = per_second.group_by(ACCOUNT, pl.col("second").floordiv(MINUTE_US // SECOND_US)).agg(
        pl.col("n").sum())
    counts = per_second.group_by(ACCOUNT).agg(
        pl.col("new_orders").sum().cast(pl.UInt32), pl.col("cancels").sum().cast(pl.UInt32),
        pl.col("n").max().alias("max_orders_per_second"))
    bursts = [per_minute.group_by(ACCOUNT).agg(pl.col("n").max().cast(pl.UInt32).alias("max_orders_per_minute"))]
    new = events.filter(event == OrderEvent.NEW.value).group_by(Order.ORDER_ID, ACCOUNT).agg(
        pl.col(Order.TIMESTAMP).min().alias("placed"))
    cancel = events.filter(event == OrderEvent.CANCEL.value).group_by(Order.ORDER_ID).agg(
        pl.col(Order.TIMESTAMP).min().alias("cancelled"))
    latency_ms = (pl.col("cancelled") - pl.col("placed")).dt.total_microseconds() / 1_000
    latencies = new.join(cancel, on=Order.ORDER_ID, how="inner").group_by(ACCOUNT).agg(
        latency_ms.median().alias("cancel_latency_median_ms"),
        (latency_ms <= inputs.settings.fast_cancel_ms).mean().alias("fast_cancel_share"),
    )
    result = counts
    for frame in (*bursts, latencies):
        result = result.join(frame, on=ACCOUNT, how="left")
    return result


def frequency_features(inputs: FeatureInputs) -> pl.LazyFrame:
    trades = _trade_counts(inputs)
    orders = _order_counts(inputs)
    both = trades.join(orders, on=ACCOUNT, how="full", coalesce=True)
    fills = pl.col("trades_day").fill_null(0)
    return both.select(
        ACCOUNT,
        fills.alias("trades_day"),
        pl.col("trades_week").fill_null(0),
        pl.col("max_trades_per_hour").fill_null(0),
        (pl.col("new_orders").fill_null(0) / pl.max_horizontal(fills, pl.lit(1))).alias("order_to_trade_ratio"),
        (pl.col("cancels") / pl.col("new_orders")).alias("cancel_rate"),
        pl.col("max_orders_per_second").fill_null(0),
        pl.col("max_orders_per_minute").fill_null(0),
        pl.col("cancel_latency_median_ms"),
        pl.col("fast_cancel_share"),
    )
