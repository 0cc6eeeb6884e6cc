"""Order-intent features: what an account's orders say it wanted the book to look like.

The spoofing / layering signals; only order events show them (never computed from trades alone). All
features are group_bys, joins on order ids and time sweeps (running sums of +1/-1 steps, `join_asof`): no
join of every fill with every order, nothing quadratic, and the full order-event table is hashed only a few
times (the `new` events, the cancels, the fills' order ids).

Conventions:
- An order is the `new` event of an order id (the first in the input if repeated), keyed by symbol x order id (the
  contract's order key); its account, side, price and size are the `new` event's. Orders placed before the
  day (no `new` on the day) are not seen.
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

KEY = [Order.SYMBOL, Order.ORDER_ID]
BOOK = [ACCOUNT, Order.SYMBOL, Order.SIDE]  # one side of one symbol's book, as one account sees it
BOOK_ID, LEVEL_ID, ORDER_IDX = "book_id", "level_id", "order_idx"  # integer ids
PLACED, ENDED, CANCELLED, RESTING = "placed", "ended", "cancelled", "resting"
DELTA, LIVE, LIVE_BEFORE = "delta", "live", "live_before"
OPPOSITE, LEVELS = "opposite_fills_while_large_resting", "max_price_levels_one_side"


def _accounts(inputs: FeatureInputs) -> pl.LazyFrame:
    """Every account with a fill or an order event on the day."""
    return pl.concat([inputs.fills.select(ACCOUNT), inputs.order_events.select(ACCOUNT)]).drop_nulls().unique()


def _day_end(inputs: FeatureInputs) -> pl.Expr:
    """The end of the UTC day: live orders that are never cancelled rest until then."""
    return pl.lit(inputs.end).cast(TIMESTAMP_DTYPE)


def _symbol(column: str = Order.SYMBOL) -> pl.Expr:
    """Symbols as categoricals (one global mapping): the order key hashes and compares two integers."""
    return pl.col(column).cast(pl.Categorical).alias(Order.SYMBOL)


def _orders(inputs: FeatureInputs) -> pl.LazyFrame:
    """One row per order placed on the day: account, side, price, size, placed, first cancel, whether it rests."""
    events = inputs.order_events
    event = pl.col(Order.EVENT)
    resting = pl.col(Order.PRICE).is_not_null() & (
        pl.col(Order.ORDER_TYPE).is_null() | (pl.col(Order.ORDER_TYPE) != MARKET_ORDER_TYPE))
    repeated = "repeated"
    new = (
        events.filter(event == OrderEvent.NEW.value)
        .select(_symbol(), Order.ORDER_ID, ACCOUNT, pl.col(Order.SIDE).cast(pl.Categorical), Order.PRICE,
                Order.QUANTITY, resting.alias(RESTING), pl.col(Order.TIMESTAMP).alias(PLACED),
                pl.col(Order.ORDER_ID).is_duplicated().alias(repeated))
    )
    # the first `new` of each order: an order id seen once (one cheap pass on the integer id) is its own
    # first; only the rows of repeated ids go through the (symbol, id) check, in input order
    first = pl.concat([
        new.filter(~pl.col(repeated)),
        new.filter(pl.col(repeated)).filter(pl.struct(KEY).is_first_distinct()),
    ]).drop(repeated)
    cancel = events.filter(event == OrderEvent.CANCEL.value).group_by(_symbol(), Order.ORDER_ID).agg(
        pl.col(Order.TIMESTAMP).min().alias(CANCELLED))
    return first.join(cancel, on=KEY, how="left")


def _size_ratio(inputs: FeatureInputs, orders: pl.LazyFrame) -> pl.LazyFrame:
    traded = inputs.fills.select(_symbol(Fill.SYMBOL), pl.col(Fill.ORDER_ID).alias(Order.ORDER_ID))
    fill_events = inputs.order_events.filter(pl.col(Order.EVENT) == OrderEvent.FILL.value).select(
        _symbol(), Order.ORDER_ID)
    filled_ids = pl.concat([traded, fill_events]).drop_nulls()
    sized = orders.filter(pl.col(Order.QUANTITY).is_not_null())
    cancelled = sized.filter(pl.col(CANCELLED).is_not_null()).group_by(ACCOUNT).agg(
        pl.col(Order.QUANTITY).mean().alias("cancelled_size"))
    filled = sized.join(filled_ids, on=KEY, how="semi").group_by(ACCOUNT).agg(
        pl.col(Order.QUANTITY).mean().alias("filled_size"))
    return cancelled.join(filled, on=ACCOUNT, how="inner").select(
        ACCOUNT, (pl.col("cancelled_size") / pl.col("filled_size")).alias("cancelled_to_filled_size_ratio"))


def _large_orders(inputs: FeatureInputs, orders: pl.LazyFrame) -> pl.LazyFrame:
    """Resting orders of at least large_order_multiple x the account's median order size in the symbol."""
    median = pl.col(Order.QUANTITY).median().over(ACCOUNT, Order.SYMBOL)
    is_large = pl.col(Order.QUANTITY) >= inputs.settings.large_order_multiple * median
    return orders.filter(pl.col(Order.QUANTITY).is_not_null()).filter(is_large & pl.col(RESTING))


def _fast_cancel_share(inputs: FeatureInputs, large: pl.LazyFrame) -> pl.LazyFrame:
    latency_ms = (pl.col(CANCELLED) - pl.col(PLACED)).dt.total_microseconds() / 1_000
    fast = (latency_ms <= inputs.settings.fast_cancel_ms).fill_null(False)
    return large.group_by(ACCOUNT).agg(fast.mean().alias("large_order_fast_cancel_share"))


# A sweep sorts steps by group, then time. Sorting on several columns is several times slower in polars than
# on one, so group id and time are packed into one unsigned 64-bit key: group id x 2^37 + microseconds since
# the day's start (a day is 8.64e10 us < 2^37; the times here lie within the day, clipped to be safe), which
# leaves 27 bits (134 M) for group ids: books, price levels and orders of one day.
TIME_BITS = 37


def _sweep_key(group: str, inputs: FeatureInputs, time: str = Order.TIMESTAMP) -> pl.Expr:
    since_start = (pl.col(time) - pl.lit(inputs.start).cast(TIMESTAMP_DTYPE)).dt.total_microseconds()
    return (pl.col(group).cast(pl.UInt64) * (1 << TIME_BITS)
            + since_start.clip(0, (1 << TIME_BITS) - 1).cast(pl.UInt64))


def _running_count(steps: pl.LazyFrame, group: str, inputs: FeatureInputs) -> pl.LazyFrame:
    """A sweep: steps (group, TIMESTAMP, DELTA of +1 / -1, other columns constant per group) -> one row per
    group x instant with LIVE, the running sum of the group's steps in time order after every step of that
    instant, and LIVE_BEFORE, the sum just before the instant.

    One sort on one integer key, then only shifts and a global cumulative sum (a group's running sum is the
    global one minus its value where the group starts): no hashing per row. The steps of one instant are
    netted (intervals are [start, end)): an order cancelled and another placed at the same instant never
    count together.
    """
    key = "sweep_key"
    new_group = (pl.col(group) != pl.col(group).shift(1)).fill_null(True)
    running = pl.col(DELTA).cum_sum()
    at_group_start = pl.when(new_group).then(running - pl.col(DELTA)).forward_fill()
    return (
        steps.with_columns(_sweep_key(group, inputs).alias(key)).sort(key)
        .with_columns((running - at_group_start).alias(LIVE))
        .filter((pl.col(key) != pl.col(key).shift(-1)).fill_null(True))  # the last step of each instant
        .with_columns(pl.when(new_group).then(0).otherwise(pl.col(LIVE).shift(1)).alias(LIVE_BEFORE))
        .drop(key, DELTA)
    )


def _steps(spans: pl.LazyFrame, columns: list[str]) -> pl.LazyFrame:
    """+1 at each span's PLACED, -1 at its ENDED; empty spans dropped."""
    spans = spans.filter(pl.col(ENDED) > pl.col(PLACED))
    return pl.concat([
        spans.select(*columns, pl.col(PLACED).alias(Order.TIMESTAMP), pl.lit(1, pl.Int32).alias(DELTA)),
        spans.select(*columns, pl.col(ENDED).alias(Order.TIMESTAMP), pl.lit(-1, pl.Int32).alias(DELTA)),
    ])


def _until_cancel_or_day_end(inputs: FeatureInputs) -> pl.Expr:
    day_end = _day_end(inputs)
    return pl.min_horizontal(pl.col(CANCELLED).fill_null(day_end), day_end)


def _opposite_fills(inputs: FeatureInputs, books: pl.LazyFrame, large: pl.LazyFrame) -> pl.LazyFrame:
    """Fills met by a live large order of the other side, per BOOK_ID of the large orders.

    Rather than joining each fill with each large order of its account x symbol (quadratic for an account with
    many fills and many large orders), a sweep counts the live large orders per book (account x symbol x side)
    over time (+1 at new, -1 at cancel or the day's end) and `join_asof` looks the count up at each fill of
    the account in that symbol on the other side: sorts and one join, O(n log n) in fills + large orders,
    however many large orders rest at once.
    """
    spans = large.select(BOOK_ID, PLACED, _until_cancel_or_day_end(inputs).alias(ENDED))
    live = _running_count(_steps(spans, [BOOK_ID]), BOOK_ID, inputs).select(BOOK_ID, Order.TIMESTAMP, LIVE)
    # a buy fill (direction +1) is opposite to resting large sells, and vice versa
    opposite = pl.when(pl.col(Fill.DIRECTION) == 1).then(pl.lit(Side.SELL.value)).otherwise(
        pl.lit(Side.BUY.value)).cast(pl.Categorical)
    books_with_large = books.join(large.select(BOOK_ID).unique(), on=BOOK_ID, how="semi")
    fills = (
        inputs.fills.select(ACCOUNT, _symbol(Fill.SYMBOL), opposite.alias(Order.SIDE),
                            Fill.TIMESTAMP)
        .join(books_with_large, on=BOOK, how="inner")
        .select(BOOK_ID, Fill.TIMESTAMP)
        .sort(Fill.TIMESTAMP)
    )
    # both sides sorted by time overall, hence within every book (polars cannot check it with `by`)
    met = fills.join_asof(live.sort(Order.TIMESTAMP), on=Fill.TIMESTAMP, by=BOOK_ID, strategy="backward",
                          check_sortedness=False)
    return met.filter(pl.col(LIVE) > 0).group_by(BOOK_ID).agg(pl.len().alias(OPPOSITE))


def _price_segments(inputs: FeatureInputs, orders: pl.LazyFrame) -> pl.LazyFrame:
    """(BOOK_ID, price, PLACED, ENDED): where each resting order stood, and when.

    An order never modified stands at its price from its `new` to its first cancel or the day's end. A
    modified order stands at each price (the `new`'s, then each `modify`'s; a modify without a price keeps
    the `new`'s) until its next modify, its cancel or the day's end; modifies at or after the cancel are
    ignored. Only orders with modifies go through the time ordering within an order.
    """
    resting = orders.filter(pl.col(RESTING))
    ended = _until_cancel_or_day_end(inputs)
    modifies = (
        inputs.order_events.filter(pl.col(Order.EVENT) == OrderEvent.MODIFY.value)
        .select(_symbol(), Order.ORDER_ID, pl.col(Order.TIMESTAMP).alias(PLACED),
                pl.col(Order.PRICE).alias("new_price"))
        .join(resting.select(*KEY, ORDER_IDX, BOOK_ID, Order.PRICE, CANCELLED), on=KEY, how="inner")
        .select(ORDER_IDX, BOOK_ID, pl.col("new_price").fill_null(pl.col(Order.PRICE)).alias(Order.PRICE),
                PLACED, CANCELLED)
    )
    modified = modifies.select(ORDER_IDX).unique()
    plain = resting.join(modified, on=ORDER_IDX, how="anti").select(BOOK_ID, Order.PRICE, PLACED,
                                                                     ended.alias(ENDED))
    chain = pl.concat([
        resting.join(modified, on=ORDER_IDX, how="semi").select(ORDER_IDX, BOOK_ID, Order.PRICE, PLACED, CANCELLED),
        modifies,
    ]).filter(pl.col(CANCELLED).is_null() | (pl.col(PLACED) < pl.col(CANCELLED)))
    same_order_next = pl.col(ORDER_IDX) == pl.col(ORDER_IDX).shift(-1)
    stepped = (
        # each order's events in time order; stable, so a modify at the instant of its `new` comes after it
        chain.sort(_sweep_key(ORDER_IDX, inputs, PLACED), maintain_order=True)
        .with_columns(pl.min_horizontal(pl.when(same_order_next).then(pl.col(PLACED).shift(-1)), ended).alias(ENDED))
        .select(BOOK_ID, Order.PRICE, PLACED, ENDED)
    )
    return pl.concat([plain, stepped])


def _price_levels(inputs: FeatureInputs, orders: pl.LazyFrame) -> pl.LazyFrame:
    """Max lit levels per BOOK_ID. Sweep 1: live orders per price level (book x price, given an integer id);
    a level lights (+1) when its count leaves 0 and goes dark (-1) when it returns to 0. Sweep 2: the running
    number of lit levels per book.

    Most levels hold a single order over the day: such a level simply lights at the order's start and goes
    dark at its end, so only the segments that may share a level (same book and price hash) or start before
    the day (where the sweep key clips times) go through sweep 1; the others are their own switches.
    """
    segments = _price_segments(inputs, orders).filter(pl.col(ENDED) > pl.col(PLACED))
    # equal (book, price) -> equal hash (+ 0.0 maps -0.0 to 0.0), so a unique hash is a single-segment level
    level_hash = pl.col(BOOK_ID).cast(pl.UInt64).hash(1) ^ (pl.col(Order.PRICE) + 0.0).hash(2)
    shared = level_hash.is_duplicated() | (pl.col(PLACED) < pl.lit(inputs.start).cast(TIMESTAMP_DTYPE))
    segments = segments.with_columns(shared.alias("shared"))
    alone = segments.filter(~pl.col("shared"))
    several = segments.filter(pl.col("shared")).select(BOOK_ID, Order.PRICE, PLACED, ENDED)
    level_ids = several.select(BOOK_ID, Order.PRICE).unique().with_row_index(LEVEL_ID)
    steps = _steps(several.join(level_ids, on=[BOOK_ID, Order.PRICE], how="inner"), [LEVEL_ID, BOOK_ID])
    per_level = _running_count(steps, LEVEL_ID, inputs)
    switch = (pl.col(LIVE) > 0).cast(pl.Int32) - (pl.col(LIVE_BEFORE) > 0).cast(pl.Int32)
    switches = pl.concat([
        per_level.select(BOOK_ID, Order.TIMESTAMP, switch.alias(DELTA)).filter(pl.col(DELTA) != 0),
        _steps(alone, [BOOK_ID]),
    ])
    return _running_count(switches, BOOK_ID, inputs).group_by(BOOK_ID).agg(pl.col(LIVE).max().alias(LEVELS))


def order_intent_features(inputs: FeatureInputs) -> pl.LazyFrame:
    # The per-order table is read by every feature below. It is materialised here (like `inputs.fills`): one
    # narrow frame of integer keys, computed once, rather than a `.cache()` node the engine may re-derive.
    orders = _orders(inputs).collect()
    # integer ids for account x symbol x side, so that the sweeps sort and compare numbers, not strings
    books = orders.lazy().select(BOOK).unique().sort(BOOK).with_row_index(BOOK_ID).collect()
    # the side is in BOOK_ID from here on
    orders = orders.lazy().join(books.lazy(), on=BOOK, how="inner").drop(Order.SIDE).with_row_index(ORDER_IDX)
    orders = orders.collect().lazy()
    books = books.lazy()
    large = _large_orders(inputs, orders).collect().lazy()
    per_book = books.join(_opposite_fills(inputs, books, large), on=BOOK_ID, how="left").join(
        _price_levels(inputs, orders), on=BOOK_ID, how="left")
    per_account = (
        inputs.order_events.select(ACCOUNT).drop_nulls().unique()
        .join(per_book.group_by(ACCOUNT).agg(pl.col(OPPOSITE).sum(), pl.col(LEVELS).max()), on=ACCOUNT,
              how="left")
        .join(_size_ratio(inputs, orders), on=ACCOUNT, how="left")
        .join(_fast_cancel_share(inputs, large), on=ACCOUNT, how="left")
        .with_columns(pl.lit(True).alias("has_orders"))
    )
    return _accounts(inputs).join(per_account, on=ACCOUNT, how="left").select(
        ACCOUNT,
        pl.col("cancelled_to_filled_size_ratio"),
        pl.col("large_order_fast_cancel_share"),
        pl.when(pl.col("has_orders")).then(pl.col(OPPOSITE).fill_null(0)).cast(pl.Int64).alias(OPPOSITE),
        pl.col(LEVELS).cast(pl.Int64),
    )
