"""Order-intent features: what an account's orders say it wanted the book to look like.

The spoofing / layering signals; only order events show them (never computed from trades alone). All
features are group_bys, joins on order ids and time sweeps (sort + cumulative sums + `join_asof`): no join
of every fill with every order, nothing quadratic.

Conventions:
- An order is the `new` event of an order id (the first one if repeated), keyed by account x symbol x order
  id; its size is the `new` event's quantity. Orders placed before the day (no `new` on the day) are not
  seen.
- A resting order is a non-market order with a price. It is live from its `new` until its first `cancel`,
  or until the end of the day (UTC) when it is not cancelled: the interval is [new, cancel), so an order
  placed and another cancelled at the same instant are not live together. Fills (trades, `fill` events)
  are ignored for liveness: a fully filled order counts as live until its cancel or the day's end.
"""
from __future__ import annotations

import polars as pl

from surveillance_pipeline.contract import MARKET_ORDER_TYPE, TIMESTAMP_DTYPE, Order, OrderEvent, Side
from surveillance_pipeline.features.base import ACCOUNT, FeatureInputs, FeatureSpec, Fill

GROUP = "order_intent"
FEATURES = [
    FeatureSpec("cancelled_to_filled_size_ratio", "ratio",
                "mean size (the `new` quantity) of the account's cancelled orders / mean size of its orders that "
                "were filled at least partly (order id is the buyer or seller order id of one of the day's "
                "trades, or has a `fill` event); an order both cancelled and partly filled counts on both "
                "sides; null when either side is empty", GROUP),
    FeatureSpec("large_order_fast_cancel_share", "share",
                "among the account's large resting orders (size >= features.large_order_multiple x the "
                "account's median order size in that symbol, both sides and all order types in the median), "
                "the share cancelled within features.fast_cancel_ms; null without large orders", GROUP),
    FeatureSpec("opposite_fills_while_large_resting", "fills",
                "the account's fills (trades) on the side opposite to at least one of its large resting orders "
                "in the same symbol, while that order is live ([new, cancel or the day's end)); each fill "
                "counted once however many large orders rest; 0 with orders but no such fill", GROUP),
    FeatureSpec("max_price_levels_one_side", "levels",
                "most distinct prices at which the account had live resting orders on one side of one symbol "
                "at the same instant (live from `new`, or `modify` for its new price, until the next modify, "
                "the cancel or the day's end; fills ignored); null without resting orders", GROUP),
]

KEY = [ACCOUNT, Order.SYMBOL, Order.ORDER_ID]
PLACED, ENDED, CANCELLED = "placed", "ended", "cancelled"
DELTA, LIVE = "delta", "live"


def _accounts(inputs: FeatureInputs) -> pl.LazyFrame:
    """Every account with a fill or an order event on the day."""
    return pl.concat([inputs.fills.select(ACCOUNT), inputs.order_events.select(ACCOUNT)]).drop_nulls().unique()


def _day_end(inputs: FeatureInputs) -> pl.Expr:
    """The end of the UTC day: live orders that are never cancelled rest until then."""
    return pl.lit(inputs.end).cast(TIMESTAMP_DTYPE)


def _orders(inputs: FeatureInputs) -> pl.LazyFrame:
    """One row per order placed on the day: size, side, price, whether it rests, when it was cancelled."""
    events = inputs.order_events
    event = pl.col(Order.EVENT)
    new = (
        events.filter(event == OrderEvent.NEW.value)
        .group_by(KEY).agg(pl.all().sort_by(Order.TIMESTAMP).first())
        .rename({Order.TIMESTAMP: PLACED})
    )
    cancel = events.filter(event == OrderEvent.CANCEL.value).group_by(KEY).agg(
        pl.col(Order.TIMESTAMP).min().alias(CANCELLED))
    resting = pl.col(Order.PRICE).is_not_null() & (
        pl.col(Order.ORDER_TYPE).is_null() | (pl.col(Order.ORDER_TYPE) != MARKET_ORDER_TYPE))
    return new.join(cancel, on=KEY, how="left").with_columns(resting.alias("resting"))


def _size_ratio(inputs: FeatureInputs, orders: pl.LazyFrame) -> pl.LazyFrame:
    traded = inputs.fills.select(
        pl.col(Fill.ACCOUNT), pl.col(Fill.SYMBOL).alias(Order.SYMBOL), pl.col(Fill.ORDER_ID).alias(Order.ORDER_ID))
    fill_events = inputs.order_events.filter(pl.col(Order.EVENT) == OrderEvent.FILL.value).select(KEY)
    filled_ids = pl.concat([traded, fill_events]).drop_nulls().unique()
    sized = orders.filter(pl.col(Order.QUANTITY).is_not_null())
    cancelled = sized.filter(pl.col(CANCELLED).is_not_null()).group_by(ACCOUNT).agg(
        pl.col(Order.QUANTITY).mean().alias("cancelled_size"))
    filled = sized.join(filled_ids, on=KEY, how="semi").group_by(ACCOUNT).agg(
        pl.col(Order.QUANTITY).mean().alias("filled_size"))
    return cancelled.join(filled, on=ACCOUNT, how="inner").select(
        ACCOUNT, (pl.col("cancelled_size") / pl.col("filled_size")).alias("cancelled_to_filled_size_ratio"))


def _large_orders(inputs: FeatureInputs, orders: pl.LazyFrame) -> pl.LazyFrame:
    median = pl.col(Order.QUANTITY).median().over(ACCOUNT, Order.SYMBOL)
    is_large = pl.col(Order.QUANTITY) >= inputs.settings.large_order_multiple * median
    return orders.filter(pl.col(Order.QUANTITY).is_not_null()).filter(is_large & pl.col("resting"))


def _fast_cancel_share(inputs: FeatureInputs, large: pl.LazyFrame) -> pl.LazyFrame:
    latency_ms = (pl.col(CANCELLED) - pl.col(PLACED)).dt.total_microseconds() / 1_000
    fast = (latency_ms <= inputs.settings.fast_cancel_ms).fill_null(False)
    return large.group_by(ACCOUNT).agg(fast.mean().alias("large_order_fast_cancel_share"))


def _live_intervals(frame: pl.LazyFrame, start: str, end: str, keys: list[str]) -> pl.LazyFrame:
    """+1 at each interval's start, -1 at its end, summed per keys x instant, as a running count per keys.

    Intervals are [start, end): events at one instant are netted before counting, so the count at an
    instant includes what starts then and excludes what ends then. Empty intervals are dropped.
    """
    spans = frame.filter(pl.col(end) > pl.col(start))
    steps = pl.concat([
        spans.select(*keys, pl.col(start).alias(Order.TIMESTAMP), pl.lit(1, pl.Int32).alias(DELTA)),
        spans.select(*keys, pl.col(end).alias(Order.TIMESTAMP), pl.lit(-1, pl.Int32).alias(DELTA)),
    ])
    return (
        steps.group_by(*keys, Order.TIMESTAMP).agg(pl.col(DELTA).sum())
        .sort(*keys, Order.TIMESTAMP)
        .with_columns(pl.col(DELTA).cum_sum().over(keys).alias(LIVE))
    )


def _opposite_fills(inputs: FeatureInputs, large: pl.LazyFrame) -> pl.LazyFrame:
    """Fills met by a live large order of the other side: a sweep of the number of live large orders per
    account x symbol x side, looked up at each fill with `join_asof` (O(n log n), however many large orders
    rest at once; instead of joining each fill with each large order)."""
    day_end = _day_end(inputs)
    spans = large.select(
        ACCOUNT, Order.SYMBOL, Order.SIDE, PLACED,
        pl.min_horizontal(pl.col(CANCELLED).fill_null(day_end), day_end).alias(ENDED))
    live = _live_intervals(spans, PLACED, ENDED, [ACCOUNT, Order.SYMBOL, Order.SIDE])
    # a buy fill (direction +1) is opposite to resting large sells, and vice versa
    opposite = pl.when(pl.col(Fill.DIRECTION) == 1).then(pl.lit(Side.SELL.value)).otherwise(pl.lit(Side.BUY.value))
    fills = (
        inputs.fills.select(ACCOUNT, pl.col(Fill.SYMBOL).alias(Order.SYMBOL), opposite.alias(Order.SIDE),
                            Fill.TIMESTAMP)
        .join(large.select(ACCOUNT, Order.SYMBOL).unique(), on=[ACCOUNT, Order.SYMBOL], how="semi")
        .sort(Fill.TIMESTAMP)
    )
    met = fills.join_asof(live.sort(Order.TIMESTAMP).select(ACCOUNT, Order.SYMBOL, Order.SIDE, Order.TIMESTAMP,
                                                             LIVE),
                          on=Fill.TIMESTAMP, by=[ACCOUNT, Order.SYMBOL, Order.SIDE], strategy="backward")
    return met.group_by(ACCOUNT).agg(
        (pl.col(LIVE).fill_null(0) > 0).sum().cast(pl.Int64).alias("opposite_fills_while_large_resting"))


def _price_levels(inputs: FeatureInputs) -> pl.LazyFrame:
    """Sweep: live orders per price level (running +1/-1 count), a level switching on when its count leaves 0
    and off when it returns to 0, then the running number of lit levels per account x symbol x side."""
    event = pl.col(Order.EVENT)
    day_end = _day_end(inputs)
    lifecycle = inputs.order_events.filter(
        event.is_in([OrderEvent.NEW.value, OrderEvent.MODIFY.value, OrderEvent.CANCEL.value]))
    not_market = pl.col(Order.ORDER_TYPE).is_null() | (pl.col(Order.ORDER_TYPE) != MARKET_ORDER_TYPE)
    # one segment per new / modify: at its price, until the order's next lifecycle event (or the day's end)
    segments = (
        lifecycle.sort(*KEY, Order.TIMESTAMP)
        .with_columns(
            pl.col(Order.PRICE).forward_fill().over(KEY),
            pl.col(Order.TIMESTAMP).shift(-1).over(KEY).fill_null(day_end).alias(ENDED),
            pl.col(Order.SIDE).forward_fill().over(KEY),
            # a cancel ends the order: later events of the same id do not revive it
            (event == OrderEvent.CANCEL.value).cum_sum().over(KEY).alias("cancels_before"),
        )
        .filter(event.is_in([OrderEvent.NEW.value, OrderEvent.MODIFY.value]) & (pl.col("cancels_before") == 0)
                & pl.col(Order.PRICE).is_not_null() & not_market)
        .select(ACCOUNT, Order.SYMBOL, Order.SIDE, Order.PRICE, pl.col(Order.TIMESTAMP).alias(PLACED), ENDED)
    )
    book = [ACCOUNT, Order.SYMBOL, Order.SIDE]
    per_level = _live_intervals(segments, PLACED, ENDED, [*book, Order.PRICE])
    lit_now = (pl.col(LIVE) > 0).cast(pl.Int32)
    switches = per_level.with_columns(
        (lit_now - lit_now.shift(1).over([*book, Order.PRICE]).fill_null(0)).alias(DELTA))
    levels = (
        switches.group_by(*book, Order.TIMESTAMP).agg(pl.col(DELTA).sum())
        .sort(*book, Order.TIMESTAMP)
        .with_columns(pl.col(DELTA).cum_sum().over(book).alias(LIVE))
    )
    return levels.group_by(ACCOUNT).agg(pl.col(LIVE).max().cast(pl.Int64).alias("max_price_levels_one_side"))


def order_intent_features(inputs: FeatureInputs) -> pl.LazyFrame:
    orders = _orders(inputs)
    large = _large_orders(inputs, orders)
    with_orders = inputs.order_events.select(ACCOUNT).drop_nulls().unique().with_columns(
        pl.lit(True).alias("has_orders"))
    per_account = (
        with_orders
        .join(_size_ratio(inputs, orders), on=ACCOUNT, how="left")
        .join(_fast_cancel_share(inputs, large), on=ACCOUNT, how="left")
        .join(_opposite_fills(inputs, large), on=ACCOUNT, how="left")
        .join(_price_levels(inputs), on=ACCOUNT, how="left")
    )
    return _accounts(inputs).join(per_account, on=ACCOUNT, how="left").select(
        ACCOUNT,
        pl.col("cancelled_to_filled_size_ratio"),
        pl.col("large_order_fast_cancel_share"),
        pl.when(pl.col("has_orders")).then(pl.col("opposite_fills_while_large_resting").fill_null(0))
        .alias("opposite_fills_while_large_resting"),
        pl.col("max_price_levels_one_side"),
    )
