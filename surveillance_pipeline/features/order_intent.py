"""Order-intent features: what an account's orders say it wanted the book to look like.

The spoofing / layering signals; only order events show them (never computed from trades alone). All
features are group_bys, joins on order ids and time sweeps (running sums of +1/-1 steps over sorted integer
keys): no join of every fill with every order, nothing quadratic. The order events are read twice, each time
with only the columns used: the `new` events, and all the other events (cancels, modifies, fills) as one
narrow frame. Repeated order ids are found by sorting the 64-bit ids, and only the orders whose id may have a
cancel or a modify (a bitmap of those ids) go through the (symbol, order id) join with these events.

Conventions:
- An order is the `new` event of an order id (the first in the input if repeated), keyed by symbol x order id (the
  contract's order key); its account, side, price and size are the `new` event's. Orders placed before the
  day (no `new` on the day) are not seen.
- A resting order is a non-market order with a price. It is live from its `new` until its first `cancel`,
  or until the end of the day (UTC) when it is not cancelled: the interval is [new, cancel), so an order
  placed and another cancelled at the same instant are not live together. Fills (trades, `fill` events)
  are ignored for liveness: a fully filled order counts as live until its cancel or the day's end.
- The sweeps count times before the day's start as its start (see `_sweep_key`).
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
PAIR, LEVEL_HASH, SEQ = "pair", "level_hash", "seq"
OPPOSITE, LEVELS = "opposite_fills_while_large_resting", "max_price_levels_one_side"


def _day_end(inputs: FeatureInputs) -> pl.Expr:
    """The end of the UTC day: live orders that are never cancelled rest until then."""
    return pl.lit(inputs.end).cast(TIMESTAMP_DTYPE)


def _day_start(inputs: FeatureInputs) -> pl.Expr:
    return pl.lit(inputs.start).cast(TIMESTAMP_DTYPE)


def _symbol(column: str = Order.SYMBOL) -> pl.Expr:
    """Symbols as categoricals (one global mapping): the order key hashes and compares two integers."""
    return pl.col(column).cast(pl.Categorical).alias(Order.SYMBOL)


def _pair(account: pl.Expr, symbol: pl.Expr) -> pl.Expr:
    """Account x symbol as one exact 64-bit key: the two categoricals' 32-bit codes side by side (both global
    mappings, so equal in fills and orders); null when either is null."""
    return account.to_physical().cast(pl.UInt64) * (1 << 32) + symbol.to_physical().cast(pl.UInt64)


def _repeated(values: pl.Series) -> pl.Series:
    """The values that occur more than once (null counts as a value), found by sorting the values: several times
    cheaper than hashing tens of millions of them (`is_duplicated`)."""
    ordered = values.sort()
    later = ordered.slice(1)
    return later.filter(later.eq_missing(ordered.slice(0, later.len())))


def _maybe_in(value: pl.Expr, members: pl.Series) -> pl.Expr:
    """True for every 64-bit hash `value` among `members` (hashes too), and for a few others (about 1 in 30): a
    bitmap over the top bits of the hashes, several times cheaper per row than the exact `is_in`. Only to leave
    out rows that cannot match before an exact step; null for a null value."""
    bits = min(max((len(members) * 32).bit_length(), 16), 30)
    top = 1 << (64 - bits)
    bitmap = (pl.Series(dtype=pl.Boolean).extend_constant(False, 1 << bits)
              .scatter((members.drop_nulls() // top).cast(pl.UInt32), True))
    return pl.lit(bitmap).gather(value // top)


def _events(inputs: FeatureInputs) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The day's `new` events (what the orders are), and all its other events (cancels, modifies, fills and any
    other), each read once with only the columns used below."""
    event = pl.col(Order.EVENT)
    resting = pl.col(Order.PRICE).is_not_null() & (
        pl.col(Order.ORDER_TYPE).is_null() | (pl.col(Order.ORDER_TYPE) != MARKET_ORDER_TYPE))
    new = (
        inputs.order_events.filter(event == OrderEvent.NEW.value)
        .select(_symbol(), Order.ORDER_ID, ACCOUNT, pl.col(Order.SIDE).cast(pl.Categorical), Order.PRICE,
                Order.QUANTITY, resting.alias(RESTING), pl.col(Order.TIMESTAMP).alias(PLACED))
    )
    other = (
        inputs.order_events.filter(event.ne_missing(OrderEvent.NEW.value))
        .select(pl.col(Order.EVENT).cast(pl.Categorical), _symbol(), Order.ORDER_ID, ACCOUNT, Order.TIMESTAMP,
                Order.PRICE)
    )
    return new.collect(), other.collect()


def _matching(events: pl.DataFrame, orders: pl.LazyFrame, columns: list[str]) -> pl.LazyFrame:
    """The events with `columns` of their order, matched on the order key (in no particular order). Only the
    orders whose id may occur among the events go into the (symbol, id) join: a cheap pass on the integer id
    leaves out the many orders never cancelled or modified."""
    candidates = orders.filter(_maybe_in(pl.col(Order.ORDER_ID), events.get_column(Order.ORDER_ID)))
    candidates = candidates.select(*KEY, *columns)
    return events.lazy().join(candidates, on=KEY, how="inner")


def _orders(new: pl.DataFrame, other: pl.DataFrame) -> pl.DataFrame:
    """One row per order placed on the day: ORDER_IDX, account, side, price, size, placed, first cancel, whether it
    rests."""
    # the first `new` of each order: an order id seen once is its own first; only the rows of repeated ids
    # (found by sorting the integer ids) go through the (symbol, id) check, in input order
    repeated_ids = _repeated(new.get_column(Order.ORDER_ID))
    if not repeated_ids.is_empty():
        repeated = pl.col(Order.ORDER_ID).is_in(repeated_ids.implode(), nulls_equal=True)
        new = pl.concat([new.filter(~repeated), new.filter(repeated).filter(pl.struct(KEY).is_first_distinct())])
    orders = new.with_row_index(ORDER_IDX)
    cancels = other.filter(pl.col(Order.EVENT) == OrderEvent.CANCEL.value).select(*KEY, Order.TIMESTAMP)
    first_cancel = (
        _matching(cancels, orders.lazy(), [ORDER_IDX])
        .group_by(ORDER_IDX).agg(pl.col(Order.TIMESTAMP).min())
        .collect()
    )
    # placed at the order's row: ORDER_IDX is the row number
    cancelled = (
        pl.Series(CANCELLED, dtype=orders.schema[PLACED]).extend_constant(None, orders.height)
        .scatter(first_cancel.get_column(ORDER_IDX), first_cancel.get_column(Order.TIMESTAMP))
    )
    return orders.with_columns(cancelled)


def _size_ratio(inputs: FeatureInputs, orders: pl.LazyFrame, other: pl.DataFrame) -> pl.LazyFrame:
    traded = inputs.fills.select(_symbol(Fill.SYMBOL), pl.col(Fill.ORDER_ID).alias(Order.ORDER_ID))
    fill_events = other.lazy().filter(pl.col(Order.EVENT) == OrderEvent.FILL.value).select(*KEY)
    filled_ids = pl.concat([traded, fill_events]).drop_nulls()
    sized = orders.filter(pl.col(Order.QUANTITY).is_not_null())
    cancelled = sized.filter(pl.col(CANCELLED).is_not_null()).group_by(ACCOUNT).agg(
        pl.col(Order.QUANTITY).mean().alias("cancelled_size"))
    # only accounts with a cancelled order get a ratio: only their orders are looked up among the fills
    filled = (
        sized.join(cancelled.select(ACCOUNT), on=ACCOUNT, how="semi")
        .join(filled_ids, on=KEY, how="semi")
        .group_by(ACCOUNT).agg(pl.col(Order.QUANTITY).mean().alias("filled_size"))
    )
    return cancelled.join(filled, on=ACCOUNT, how="inner").select(
        ACCOUNT, (pl.col("cancelled_size") / pl.col("filled_size")).alias("cancelled_to_filled_size_ratio"))


def _large_orders(inputs: FeatureInputs, orders: pl.LazyFrame) -> pl.LazyFrame:
    """Resting orders of at least large_order_multiple x the account's median order size in the symbol."""
    # one integer key per account x symbol (the orders here all have an account and a symbol)
    median = pl.col(Order.QUANTITY).median().over(_pair(pl.col(ACCOUNT), pl.col(Order.SYMBOL)))
    is_large = pl.col(Order.QUANTITY) >= inputs.settings.large_order_multiple * median
    return orders.filter(pl.col(Order.QUANTITY).is_not_null()).filter(is_large & pl.col(RESTING))


def _fast_cancel_share(inputs: FeatureInputs, large: pl.LazyFrame) -> pl.LazyFrame:
    latency_ms = (pl.col(CANCELLED) - pl.col(PLACED)).dt.total_microseconds() / 1_000
    fast = (latency_ms <= inputs.settings.fast_cancel_ms).fill_null(False)
    return large.group_by(ACCOUNT).agg(fast.mean().alias("large_order_fast_cancel_share"))


# A sweep sorts steps by group, then time. Sorting on several columns is several times slower in polars than
# on one, so group id and time are packed into one unsigned 64-bit key: group id x 2^37 + microseconds since
# the day's start (a day is 8.64e10 us < 2^37; the times here lie within the day, clipped to be safe), which
# leaves 27 bits (134 M) for group ids: books, price levels and orders of one day. The sweeps over books
# (`_sorted_sweep`) add 2 bits for the kind of event and sort these values alone, so books get 25 bits (33 M).
TIME_BITS = 37
KIND_BITS = 2
BOOK_BITS = 64 - TIME_BITS - KIND_BITS
END, START, LOOKUP = 0, 1, 2  # kinds of sweep events, in their order within one instant of a group
EVENT_KEY, KIND, RUNNING = "event_key", "kind", "running"


def _sweep_key(group: str, inputs: FeatureInputs, time: str = Order.TIMESTAMP) -> pl.Expr:
    since_start = (pl.col(time) - _day_start(inputs)).dt.total_microseconds()
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


def _event_key(group: str, inputs: FeatureInputs, time: str, kind: int | pl.Expr) -> pl.Expr:
    """One event of a `_sorted_sweep` as one 64-bit value: `_sweep_key` x 4 + its kind (END, START, LOOKUP)."""
    return (_sweep_key(group, inputs, time) * (1 << KIND_BITS) + kind).alias(EVENT_KEY)


def _sorted_sweep(events: pl.LazyFrame, group: str) -> pl.LazyFrame:
    """A sweep over `_event_key`s (group < 2^BOOK_BITS): span ends (-1), span starts (+1) and lookups -> one row
    per event in order: the group, KIND and RUNNING, the cumulative sum of the steps up to the event, all groups
    one after the other (a group's count is RUNNING minus its value before the group's first event; 0 when the
    earlier groups' spans all ended).

    Only the 64-bit values are sorted (no rows to carry along). Each group's events come in time order and,
    within an instant, the ends before the starts before the lookups: a lookup sees the count after every
    step of its instant, and the count after a step is never above its value after the whole instant (so the
    maximum over steps is the maximum over instants, the steps of one instant netted as in `_running_count`).
    """
    key = pl.col(EVENT_KEY)
    kind = key % (1 << KIND_BITS)
    delta = (kind == START).cast(pl.Int32) - (kind == END).cast(pl.Int32)
    return events.select(key.sort()).select((key // (1 << (TIME_BITS + KIND_BITS))).cast(pl.UInt32).alias(group),
                                             kind.alias(KIND), delta.cum_sum().alias(RUNNING))


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
    many fills and many large orders), one sweep per book (account x symbol x side) counts its live large
    orders over time (+1 at new, -1 at cancel or the day's end) and looks the count up at each fill of the
    account in that symbol on the other side (a lookup event of the book, after the steps of its instant):
    one sort, O(n log n) in fills + large orders, however many large orders rest at once. The fills find
    their book by one integer key (account x symbol), buys among the books of large sells and sells among
    those of large buys. A fill before the day's start is looked up at the start.
    """
    spans = large.select(BOOK_ID, PLACED, _until_cancel_or_day_end(inputs).alias(ENDED)).filter(
        pl.col(ENDED) > pl.col(PLACED))
    books_with_large = books.join(large.select(BOOK_ID).unique(), on=BOOK_ID, how="semi").select(
        _pair(pl.col(ACCOUNT), pl.col(Order.SYMBOL)).alias(PAIR), Order.SIDE, BOOK_ID)
    fills = inputs.fills.select(_pair(pl.col(ACCOUNT), _symbol(Fill.SYMBOL)).alias(PAIR), Fill.DIRECTION,
                                Fill.TIMESTAMP)
    # a buy fill (direction +1) is opposite to resting large sells, and vice versa
    bought = pl.col(Fill.DIRECTION) == 1
    lookups = pl.concat([
        fills.filter(is_side).join(
            books_with_large.filter(pl.col(Order.SIDE) == opposite).select(PAIR, BOOK_ID), on=PAIR, how="inner")
        for is_side, opposite in ((bought, Side.SELL.value), (~bought, Side.BUY.value))
    ])
    events = pl.concat([
        spans.select(_event_key(BOOK_ID, inputs, PLACED, START)),
        spans.select(_event_key(BOOK_ID, inputs, ENDED, END)),
        lookups.select(_event_key(BOOK_ID, inputs, Fill.TIMESTAMP, LOOKUP)),
    ])
    # every span has both its steps, so each book's count returns to 0 before the next book's events
    met = _sorted_sweep(events, BOOK_ID).filter((pl.col(KIND) == LOOKUP) & (pl.col(RUNNING) > 0))
    return met.group_by(BOOK_ID).agg(pl.len().alias(OPPOSITE))


def _price_segments(inputs: FeatureInputs, orders: pl.LazyFrame, other: pl.DataFrame) -> pl.LazyFrame:
    """(BOOK_ID, price, PLACED, ENDED): where each resting order stood, and when.

    An order never modified stands at its price from its `new` to its first cancel or the day's end. A
    modified order stands at each price (the `new`'s, then each `modify`'s; a modify without a price keeps
    the `new`'s) until its next modify, its cancel or the day's end; modifies at or after the cancel are
    ignored. Only orders with modifies go through the time ordering within an order.
    """
    resting = orders.filter(pl.col(RESTING))
    ended = _until_cancel_or_day_end(inputs)
    # SEQ: 0 for the `new`, then the modifies' input order (1 + row in the events)
    modify_events = other.with_row_index(SEQ, offset=1).filter(
        pl.col(Order.EVENT) == OrderEvent.MODIFY.value).select(
        *KEY, pl.col(Order.TIMESTAMP).alias(PLACED), pl.col(Order.PRICE).alias("new_price"), SEQ)
    modifies = (
        _matching(modify_events, resting, [ORDER_IDX, BOOK_ID, Order.PRICE, CANCELLED])
        .select(ORDER_IDX, BOOK_ID, pl.col("new_price").fill_null(pl.col(Order.PRICE)).alias(Order.PRICE),
                PLACED, CANCELLED, SEQ)
        .collect()
    )
    modified = pl.col(ORDER_IDX).is_in(modifies.get_column(ORDER_IDX).unique().implode())
    plain = resting.filter(~modified).select(BOOK_ID, Order.PRICE, PLACED, ended.alias(ENDED))
    chain = pl.concat([
        resting.filter(modified).select(ORDER_IDX, BOOK_ID, Order.PRICE, PLACED, CANCELLED,
                                        pl.lit(0, modifies.schema[SEQ]).alias(SEQ)),
        modifies.lazy(),
    ]).filter(pl.col(CANCELLED).is_null() | (pl.col(PLACED) < pl.col(CANCELLED)))
    same_order_next = pl.col(ORDER_IDX) == pl.col(ORDER_IDX).shift(-1)
    stepped = (
        # each order's events in time order; at one instant the `new` first, then the modifies in input order
        chain.sort(_sweep_key(ORDER_IDX, inputs, PLACED), SEQ)
        .with_columns(pl.min_horizontal(pl.when(same_order_next).then(pl.col(PLACED).shift(-1)), ended).alias(ENDED))
        .select(BOOK_ID, Order.PRICE, PLACED, ENDED)
    )
    return pl.concat([plain, stepped])


def _price_levels(inputs: FeatureInputs, orders: pl.LazyFrame, other: pl.DataFrame) -> pl.LazyFrame:
    """Max lit levels per BOOK_ID. Sweep 1: live orders per price level (book x price, given an integer id);
    a level lights (+1) when its count leaves 0 and goes dark (-1) when it returns to 0. Sweep 2: the running
    number of lit levels per book (`_sorted_sweep`), of which only the maximum is kept.

    Times before the day's start count as its start (as the sweep keys clip them), so segments that ended
    before it are empty. Most levels hold a single segment over the day: such a level simply lights at the
    segment's start and goes dark at its end, so only the segments that may share a level (same book and price
    hash: the repeated hashes are found by sorting them) go through sweep 1; the others are their own switches.
    Sweep 2 leaves out the steps at the day's end: they are all -1 (nothing starts there), so no maximum is
    reached there, and most orders are never cancelled.
    """
    start, day_end = _day_start(inputs), _day_end(inputs)
    from_start = [pl.when(pl.col(c) < start).then(start).otherwise(pl.col(c)).alias(c) for c in (PLACED, ENDED)]
    # equal (book, price) -> equal hash (+ 0.0 maps -0.0 to 0.0), so a unique hash is a single-segment level
    level_hash = pl.col(BOOK_ID).cast(pl.UInt64).hash(1) ^ (pl.col(Order.PRICE) + 0.0).hash(2)
    # the segments are not held in memory: their hashes are read first, then the two shares of them
    segments = _price_segments(inputs, orders, other).select(BOOK_ID, Order.PRICE, *from_start).filter(
        pl.col(ENDED) > pl.col(PLACED))
    # (and a few with a unique hash: sweep 1 is exact for any segments)
    shared = _maybe_in(level_hash, _repeated(segments.select(level_hash).collect().to_series()))
    several = segments.filter(shared).collect().lazy()
    alone = segments.filter(~shared)
    level_ids = several.select(BOOK_ID, Order.PRICE).unique().with_row_index(LEVEL_ID)
    steps = _steps(several.join(level_ids, on=[BOOK_ID, Order.PRICE], how="inner"), [LEVEL_ID, BOOK_ID])
    per_level = _running_count(steps, LEVEL_ID, inputs)
    switch = (pl.col(LIVE) > 0).cast(pl.Int32) - (pl.col(LIVE_BEFORE) > 0).cast(pl.Int32)
    # sweep 2, without the steps at the day's end
    before_day_end = pl.col(Order.TIMESTAMP) < day_end
    switches = per_level.select(BOOK_ID, Order.TIMESTAMP, switch.alias(DELTA)).filter(
        (pl.col(DELTA) != 0) & before_day_end)
    events = pl.concat([
        switches.select(_event_key(BOOK_ID, inputs, Order.TIMESTAMP, (pl.col(DELTA) > 0).cast(pl.UInt64))),
        # one pass over the alone segments: their starts, then their ends before the day's end
        alone.select(_event_key(BOOK_ID, inputs, PLACED, START).append(
            _event_key(BOOK_ID, inputs, ENDED, END).filter(pl.col(ENDED) < day_end))),
    ])
    # Each book's maximum: RUNNING never drops below its value before the book (a book's count never goes
    # below 0), so a global cumulative max of BOOK_ID x 2^32 + RUNNING (books ascend: it never carries over from
    # one book into the next), read at the book's last event, less RUNNING at the previous book's last event.
    book_last = (pl.col(BOOK_ID) != pl.col(BOOK_ID).shift(-1)).fill_null(True)
    peak = (pl.col(BOOK_ID).cast(pl.UInt64) * (1 << 32) + pl.col(RUNNING).cast(pl.UInt64)).cum_max() % (1 << 32)
    return (
        _sorted_sweep(events, BOOK_ID).select(BOOK_ID, peak.cast(pl.Int64).alias(LEVELS), RUNNING).filter(book_last)
        .select(BOOK_ID, pl.col(LEVELS) - pl.col(RUNNING).shift(1, fill_value=0))
    )


def _accounts(inputs: FeatureInputs, event_accounts: pl.DataFrame) -> pl.LazyFrame:
    """Every account with a fill or an order event on the day."""
    return pl.concat([inputs.fills.select(ACCOUNT), event_accounts.lazy()]).drop_nulls().unique()


def _with_book_ids(orders: pl.DataFrame, books: pl.DataFrame) -> pl.DataFrame:
    """BOOK_ID on every order, in place of its side; orders without an account, a symbol or a side have no book
    and are left out. Only the keys go through the join, and the ids go back to the orders' rows (ORDER_IDX is
    the row number): the wide per-order table is not copied."""
    ids = (orders.lazy().select(ORDER_IDX, *BOOK).join(books.lazy(), on=BOOK, how="inner")
           .select(ORDER_IDX, BOOK_ID).collect())
    book_id = (pl.Series(BOOK_ID, dtype=books.schema[BOOK_ID]).extend_constant(None, orders.height)
               .scatter(ids.get_column(ORDER_IDX), ids.get_column(BOOK_ID)))
    orders = orders.with_columns(book_id).drop(Order.SIDE)
    return orders if ids.height == orders.height else orders.filter(pl.col(BOOK_ID).is_not_null())


def order_intent_features(inputs: FeatureInputs) -> pl.LazyFrame:
    new, other = _events(inputs)
    # every account with an order event (a repeated `new` included)
    event_accounts = pl.concat([new.lazy().select(ACCOUNT), other.lazy().select(ACCOUNT)]).drop_nulls().unique()
    event_accounts = event_accounts.collect()
    # The per-order table is read by every feature below. It is materialised here (like `inputs.fills`): one
    # narrow frame of integer keys, computed once, rather than a `.cache()` node the engine may re-derive.
    orders = _orders(new, other)
    del new
    # integer ids for account x symbol x side, so that the sweeps sort and compare numbers, not strings
    books = orders.lazy().select(BOOK).unique().sort(BOOK).with_row_index(BOOK_ID).collect()
    if books.height > 1 << BOOK_BITS:
        raise ValueError(f"{books.height} books (account x symbol x side) on one day: at most 2^{BOOK_BITS}")
    orders = _with_book_ids(orders, books).lazy()
    books = books.lazy()
    large = _large_orders(inputs, orders).collect().lazy()
    # The features one after the other, each result small: their large intermediates are never held together.
    opposite = _opposite_fills(inputs, books, large).collect()
    levels = _price_levels(inputs, orders, other).collect()
    size_ratio = _size_ratio(inputs, orders, other).collect()
    fast_cancel = _fast_cancel_share(inputs, large).collect()
    del orders, other
    per_book = books.join(opposite.lazy(), on=BOOK_ID, how="left").join(levels.lazy(), on=BOOK_ID, how="left")
    per_account = (
        event_accounts.lazy()
        .join(per_book.group_by(ACCOUNT).agg(pl.col(OPPOSITE).sum(), pl.col(LEVELS).max()), on=ACCOUNT,
              how="left")
        .join(size_ratio.lazy(), on=ACCOUNT, how="left")
        .join(fast_cancel.lazy(), on=ACCOUNT, how="left")
        .with_columns(pl.lit(True).alias("has_orders"))
    )
    return _accounts(inputs, event_accounts).join(per_account, on=ACCOUNT, how="left").select(
        ACCOUNT,
        pl.col("cancelled_to_filled_size_ratio"),
        pl.col("large_order_fast_cancel_share"),
        pl.when(pl.col("has_orders")).then(pl.col(OPPOSITE).fill_null(0)).cast(pl.Int64).alias(OPPOSITE),
        pl.col(LEVELS).cast(pl.Int64),
    )
