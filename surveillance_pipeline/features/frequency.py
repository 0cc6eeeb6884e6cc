"""Frequency features: how often an account trades and sends, cancels and bursts orders.

Implementation: group keys are integers. An account x clock bucket is one 64-bit number, the account's
categorical code above the bucket's offset from a fixed start. Order messages are counted per account x
second by sorting those numbers (the messages of one account and second are then a run, its minutes runs of
seconds) instead of hashing tens of millions of near-unique groups. Cancel latencies: the cancels are
grouped by order first, and only the `new` events of cancelled orders kept (a join), grouped per order
only when an order was placed twice.
"""
from __future__ import annotations

import polars as pl

from surveillance_pipeline.contract import Order, OrderEvent
from surveillance_pipeline.features.base import ACCOUNT, FeatureInputs, FeatureSpec, Fill, hashed_id

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

SECOND_US, MINUTE_US, HOUR_US = 1_000_000, 60_000_000, 3_600_000_000
_CODE, _KEY, _IN_RANGE = "_code", "_key", "_in_range"
_LOW = 2**32  # an account x bucket key: the account's code * _LOW + the bucket's offset (< _LOW - 1 minute)
_MISSING = _LOW - 1  # the code of a missing account, the offset of a missing time (their own buckets)
_SECONDS_A_MINUTE = MINUTE_US // SECOND_US
_MIDDLE = _SECONDS_A_MINUTE * (2**31 // _SECONDS_A_MINUTE)  # second offsets count from the day's start less this


def _bucket(every_us: int, time: str) -> pl.Expr:
    """The clock bucket (second, minute, hour) of a time, as an integer: cheaper to hash than `dt.truncate`."""
    return pl.col(time).dt.epoch("us").floordiv(every_us)


def _code() -> pl.Expr:
    """The account's categorical code (32-bit) as a 64-bit number; _MISSING when the account is null."""
    return pl.col(ACCOUNT).to_physical().cast(pl.UInt64).fill_null(_MISSING)


def _trade_counts(inputs: FeatureInputs) -> pl.LazyFrame:
    # one pass over the fills: counts per account x hour (one integer key), then their sum (the day) and max
    hour = _bucket(HOUR_US, Fill.TIMESTAMP)
    offset = (hour - hour.min()).cast(pl.UInt64).fill_null(_MISSING)  # hours since the first: far below _LOW
    day_and_hour = (
        inputs.fills.group_by((_code() * _LOW + offset).alias(_KEY)).agg(pl.col(ACCOUNT).first(), pl.len().alias("n"))
        .group_by(ACCOUNT).agg(pl.col("n").sum().cast(pl.UInt32).alias("trades_day"),
                               pl.col("n").max().alias("max_trades_per_hour"))
    )
    # the look-back window's fills: the day's and the earlier days'
    history = inputs.history_fills.group_by(ACCOUNT).agg(pl.len().alias("history"))
    return day_and_hour.join(history, on=ACCOUNT, how="left").select(
        ACCOUNT, "trades_day", (pl.col("trades_day") + pl.col("history").fill_null(0)).alias("trades_week"),
        "max_trades_per_hour")


def _message_bursts(keys: pl.DataFrame) -> pl.LazyFrame:
    """Per account code, the most order messages in one second and in one clock minute, from one account x
    second `_key` per message: sorted, an account's second is a run of keys and its minute a run of seconds,
    grouped without hashing."""
    keys = keys.sort(_KEY)
    code = (pl.col(_KEY) // _LOW).alias(_CODE)
    minute = (code * _LOW + pl.col(_KEY) % _LOW // _SECONDS_A_MINUTE).set_sorted().alias(_KEY)
    per_second = keys.lazy().group_by(pl.col(_KEY).set_sorted()).agg(pl.len().alias("n")).group_by(code).agg(
        pl.col("n").max().alias("max_orders_per_second"))
    per_minute = keys.lazy().group_by(minute).agg(pl.len().alias("n")).group_by(code).agg(
        pl.col("n").max().cast(pl.UInt32).alias("max_orders_per_minute"))
    return per_second.join(per_minute, on=_CODE, how="left")


def _hashed_message_bursts(messages: pl.LazyFrame) -> pl.LazyFrame:
    """`_message_bursts` by hashing account x second (for a tape whose times do not fit the keys)."""
    second = _bucket(SECOND_US, Order.TIMESTAMP).alias("second")
    return (
        messages.group_by(_code().alias(_CODE), second).agg(pl.len().alias("n"))
        .group_by(_CODE, pl.col("second").floordiv(_SECONDS_A_MINUTE)).agg(pl.col("n").max().alias("max_orders_per_second"),
                                                            pl.col("n").sum())
        .group_by(_CODE).agg(pl.col("max_orders_per_second").max(),
                             pl.col("n").max().cast(pl.UInt32).alias("max_orders_per_minute"))
    )


def _order_counts(inputs: FeatureInputs) -> pl.LazyFrame:
    events = inputs.order_events
    event = pl.col(Order.EVENT)
    # one pass over the events: per account the new orders and cancels, and each order message's account x
    # second key (offsets from a minute boundary; times within 68 years of the day fit in the key)
    offset = _bucket(SECOND_US, Order.TIMESTAMP) - (int(inputs.start.timestamp()) - _MIDDLE)
    narrow = events.select(
        ACCOUNT, (event != OrderEvent.FILL.value).alias("_message"),
        (event == OrderEvent.NEW.value).alias("_new"), (event == OrderEvent.CANCEL.value).alias("_cancel"),
        (_code() * _LOW + offset.clip(0, _MISSING).cast(pl.UInt64).fill_null(_MISSING)).alias(_KEY),
        offset.is_between(0, _MISSING - _SECONDS_A_MINUTE).fill_null(True).alias(_IN_RANGE),
    ).collect()
    counts = narrow.lazy().group_by(_code().alias(_CODE)).agg(
        pl.col(ACCOUNT).first(), pl.col("_new").sum().alias("new_orders"),
        pl.col("_cancel").sum().alias("cancels"))
    if narrow[_IN_RANGE].all():
        bursts = _message_bursts(narrow.filter("_message").select(_KEY))
    else:  # a tape spanning a century
        bursts = _hashed_message_bursts(events.filter(event != OrderEvent.FILL.value))
    counts, bursts = pl.collect_all([counts, bursts])
    return (
        counts.lazy().join(bursts.lazy(), on=_CODE, how="left")
        .select(ACCOUNT, "new_orders", "cancels", "max_orders_per_second", "max_orders_per_minute")
        .join(_cancel_latencies(inputs), on=ACCOUNT, how="left")
    )


def _cancel_latencies(inputs: FeatureInputs) -> pl.LazyFrame:
    """Per account, the median time from an order (its first `new`) to its first cancel, and the share of
    cancels within fast_cancel_ms. The cancels are grouped first: only the `new` events of cancelled orders
    are kept, grouped per order only when an order has several, and their account ids made categorical once
    per account."""
    orders = inputs.orders
    event, timestamp = pl.col(Order.EVENT), pl.col(Order.TIMESTAMP)
    cancel = orders.filter(event == OrderEvent.CANCEL.value).group_by(hashed_id(Order.ORDER_ID)).agg(
        timestamp.min().alias("cancelled"))
    new = (
        orders.filter(event == OrderEvent.NEW.value)
        .select(hashed_id(Order.ORDER_ID), Order.USER_ID, timestamp.alias("placed"))
        .join(cancel, on=Order.ORDER_ID, how="inner")
        .collect()
    )
    if new[Order.ORDER_ID].is_duplicated().any():  # orders placed twice: from their first `new`
        new = new.lazy().group_by(Order.ORDER_ID, Order.USER_ID).agg(
            pl.col("placed").min(), pl.col("cancelled").first()).collect()
    latency_ms = (pl.col("cancelled") - pl.col("placed")).dt.total_microseconds() / 1_000
    return new.lazy().group_by(Order.USER_ID).agg(
        latency_ms.median().alias("cancel_latency_median_ms"),
        (latency_ms <= inputs.settings.fast_cancel_ms).mean().alias("fast_cancel_share"),
    ).select(pl.col(Order.USER_ID).cast(pl.Categorical).alias(ACCOUNT), pl.exclude(Order.USER_ID))


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
        # undefined (null) for an account that only cancelled orders placed on earlier days
        pl.when(pl.col("new_orders") > 0).then(pl.col("cancels") / pl.col("new_orders")).alias("cancel_rate"),
        pl.col("max_orders_per_second").fill_null(0),
        pl.col("max_orders_per_minute").fill_null(0),
        pl.col("cancel_latency_median_ms"),
        pl.col("fast_cancel_share"),
    )
