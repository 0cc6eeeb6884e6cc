"""Price-impact features: how far the account's fills sit from the market, and what the price did after.

Market references come from the day's tape (`inputs.trades`, every trade, anonymous ones included); the
account side from `inputs.fills`. Prices are compared in basis points (bps) of the reference price. Every
mean is over fills (each fill counts once, whatever its size).

The effective spread needs the best bid and ask of the *other* accounts at the moment of each taker fill.
They are rebuilt from the order events without a quadratic join: the distinct (symbol, taker-fill time)
pairs are numbered 0..M-1, each resting order becomes the range [a, b) of those numbers during which it
was live (a binary search of its placement and its end among them), and that range is cut into the blocks
of a 16-ary interval tree (at most 2 x 15 blocks per level, levels up to log16 of the range). Each block
keeps its best price with that price's account, and the best price of any other account, so a fill looks
up one block per level (about log16 M rows) and takes the best price of an account other than its own.
Rows: O((orders + fills) x log16 M); keys are integers (hashes, ranks) so joins and sorts stay cheap.
"""
from __future__ import annotations

import math
from datetime import datetime

import polars as pl

from surveillance_pipeline.contract import MARKET_ORDER_TYPE, Order, OrderEvent, Side, Trade
from surveillance_pipeline.features.base import ACCOUNT, FeatureInputs, FeatureSpec, Fill

GROUP = "price_impact"
FEATURES = [
    FeatureSpec("vwap_deviation_bps", "bps", "mean over the account's fills of |price - VWAP| / VWAP, where VWAP "
                "is the market volume-weighted average price of the fill's symbol and clock minute (every trade "
                "of the tape in that minute); null if no fill has a VWAP", GROUP),
    FeatureSpec("slippage_bps", "bps", "mean over the account's taker fills of direction x (price - minute "
                "VWAP) / VWAP (direction +1 bought, -1 sold): positive = paid worse than the minute's VWAP; "
                "null without taker fills", GROUP),
    FeatureSpec("reversal_bps", "bps", "mean over the account's taker fills of -direction x (p(t+N) - price) "
                "/ price, N = features.reversal_seconds and p(t+N) the last tape price of the symbol at or "
                "before t+N (the fill's own price when nothing traded after it; the day's last price when "
                "t+N is past the tape's end): positive = the price came back after the account pushed it "
                "(temporary impact); null without taker fills", GROUP),
    FeatureSpec("effective_spread_bps", "bps", "mean over the account's taker fills of 2 x |price - mid| / "
                "mid. mid = (best bid + best ask) / 2 of the other accounts' live limit orders rebuilt from the "
                "order events (an order is live from its `new` event up to and including its first cancel, or "
                "its last fill once its fills add up to its quantity; partial fills do not shrink it and "
                "modifies are ignored: the order keeps its first price); when "
                "that book is one-sided, crossed or absent at t (no order events for the symbol), mid = the mean "
                "of the last buy-initiated and last sell-initiated tape prices strictly before t (trade "
                "bounce); fills with neither are left out; null without such taker fills", GROUP),
]

BOOK_BRANCHING = 16  # fan-out of the interval tree used to rebuild the best bid / ask
_BPS = 1e4

_ROW = "fill_row"
_BUY = Side.BUY.value
_SELL = Side.SELL.value


def _tape(inputs: FeatureInputs) -> pl.LazyFrame:
    """The day's market trades in time order (tape order kept among equal timestamps)."""
    return (
        inputs.trades.select(Trade.SYMBOL, Trade.TIMESTAMP, Trade.SIDE, Trade.PRICE, Trade.QUANTITY)
        .filter(pl.col(Trade.PRICE).is_not_null())
        .sort(Trade.TIMESTAMP, maintain_order=True)
    )


def _minute_vwap(tape: pl.LazyFrame) -> pl.LazyFrame:
    quantity = pl.col(Trade.QUANTITY)
    return tape.group_by(Trade.SYMBOL, pl.col(Trade.TIMESTAMP).dt.truncate("1m").alias("minute")).agg(
        pl.when(quantity.sum() > 0).then((pl.col(Trade.PRICE) * quantity).sum() / quantity.sum()).alias("vwap"))


def _vwap_features(fills: pl.LazyFrame, tape: pl.LazyFrame) -> pl.LazyFrame:
    vwap = pl.col("vwap")
    with_vwap = fills.with_columns(pl.col(Fill.TIMESTAMP).dt.truncate("1m").alias("minute")).join(
        _minute_vwap(tape), on=[Fill.SYMBOL, "minute"], how="left")
    gap = pl.col(Fill.PRICE) - vwap
    return with_vwap.group_by(ACCOUNT).agg(
        (gap.abs() / vwap * _BPS).mean().alias("vwap_deviation_bps"),
        (pl.col(Fill.DIRECTION) * gap / vwap * _BPS).filter(pl.col(Fill.IS_TAKER)).mean().alias("slippage_bps"),
    )


def _reversal(takers: pl.LazyFrame, tape: pl.LazyFrame, seconds: int) -> pl.LazyFrame:
    later = tape.select(Trade.SYMBOL, pl.col(Trade.TIMESTAMP).alias("t_after"),
                        pl.col(Trade.PRICE).alias("price_after"))
    moved = (
        takers.with_columns((pl.col(Fill.TIMESTAMP) + pl.duration(seconds=seconds)).alias("t_after"))
        .sort("t_after")
        .join_asof(later, on="t_after", by=Fill.SYMBOL, strategy="backward", check_sortedness=False)
    )
    move = (pl.col("price_after") - pl.col(Fill.PRICE)) / pl.col(Fill.PRICE) * _BPS
    return moved.group_by(ACCOUNT).agg((-pl.col(Fill.DIRECTION) * move).mean().alias("reversal_bps"))


def _bounce_mid(takers: pl.LazyFrame, tape: pl.LazyFrame) -> pl.LazyFrame:
    """fill_row -> mean of the last buy- and last sell-initiated tape prices strictly before the fill."""
    out = takers.select(_ROW, Fill.SYMBOL, Fill.TIMESTAMP).sort(Fill.TIMESTAMP)
    for side, name in ((_BUY, "last_buy"), (_SELL, "last_sell")):
        last = tape.filter(pl.col(Trade.SIDE) == side).select(Trade.SYMBOL, Trade.TIMESTAMP,
                                                               pl.col(Trade.PRICE).alias(name))
        out = out.join_asof(last, on=Fill.TIMESTAMP, by=Fill.SYMBOL, strategy="backward",
                            allow_exact_matches=False, check_sortedness=False)
    return out.select(_ROW, ((pl.col("last_buy") + pl.col("last_sell")) / 2).alias("bounce_mid"))


def _resting_orders(inputs: FeatureInputs) -> pl.LazyFrame:
    """Limit orders of the day: symbol, account, is_bid, price, placed, end (null: live to the day's end).

    An order leaves the book at its first cancel, or at its last fill once its fills add up to its quantity.
    Orders are keyed by a 64-bit hash of (symbol, order id): integer joins are several times faster than
    string joins, and a collision (odds about n^2 / 2^65, 1e-5 for 15 M orders) would only blur one order's end.
    """
    events = inputs.order_events
    event = pl.col(Order.EVENT)
    order_key = pl.struct(Order.SYMBOL, Order.ORDER_ID).hash().alias("order_key")
    new = events.filter(
        (event == OrderEvent.NEW.value) & pl.col(Order.PRICE).is_not_null() & pl.col(Order.SIDE).is_in([_BUY, _SELL])
        & pl.col(Order.ORDER_TYPE).ne_missing(MARKET_ORDER_TYPE)
    ).select(order_key, Order.SYMBOL, ACCOUNT, (pl.col(Order.SIDE) == _BUY).alias("is_bid"), Order.PRICE,
             pl.col(Order.QUANTITY).alias("size"), pl.col(Order.TIMESTAMP).alias("placed"))
    cancelled = events.filter(event == OrderEvent.CANCEL.value).group_by(order_key).agg(
        pl.col(Order.TIMESTAMP).min().alias("cancelled"))
    filled = inputs.fills.filter(pl.col(Fill.ORDER_ID).is_not_null()).group_by(
        pl.struct(Fill.SYMBOL, Fill.ORDER_ID).hash().alias("order_key")).agg(
        pl.col(Fill.QUANTITY).sum().alias("filled"), pl.col(Fill.TIMESTAMP).max().alias("last_fill"))
    filled_out = pl.when(pl.col("filled") >= pl.col("size") * (1 - 1e-9)).then(pl.col("last_fill"))
    return (
        new.join(cancelled, on="order_key", how="left").join(filled, on="order_key", how="left")
        .select(Order.SYMBOL, ACCOUNT, "is_bid", Order.PRICE, "placed",
                pl.min_horizontal("cancelled", filled_out).alias("end"))
    )


_CLOCK_BITS = 42  # microseconds from the day's start, offset into [1, 2^42 - 2] (+-25 days)


def _symbol_clock(symbol_code: pl.Expr, timestamp: pl.Expr, start: datetime) -> pl.Expr:
    """One sortable Int64 for (symbol, time): the symbol's code above the clock; a null time sorts last."""
    half = 1 << (_CLOCK_BITS - 1)
    clock = ((timestamp - start).dt.total_microseconds().clip(-half + 1, half - 2) + half).fill_null(
        (1 << _CLOCK_BITS) - 1)
    return symbol_code.cast(pl.Int64) * (1 << _CLOCK_BITS) + clock


def _levels(span: pl.Expr) -> pl.Expr:
    """Tree levels 0..floor(log16 span): block widths B^k up to the span (the epsilon only adds a spare)."""
    return pl.int_ranges(0, (span.cast(pl.Float64).log(BOOK_BRANCHING) + 1e-9).floor().cast(pl.Int64) + 1)


def _account_code() -> pl.Expr:
    return pl.col(ACCOUNT).cast(pl.Categorical).to_physical().alias("account")


def _book_quotes(inputs: FeatureInputs, takers: pl.LazyFrame) -> pl.LazyFrame:
    """fill_row -> best bid and best ask of the other accounts' live orders at the fill's time."""
    branching, start = BOOK_BRANCHING, inputs.start
    book_symbols = inputs.order_events.select(Order.SYMBOL).unique()
    queries = takers.select(_ROW, ACCOUNT, Fill.SYMBOL, Fill.TIMESTAMP).join(book_symbols, on=Fill.SYMBOL,
                                                                              how="semi")
    symbols = queries.select(Fill.SYMBOL).unique().sort(Fill.SYMBOL).with_row_index("symbol_code").collect()
    # Number the distinct (symbol, fill time) pairs 0..M-1 in (symbol, time) order: rank.
    clock = pl.col("clock")
    # Accounts by their categorical code (one global dictionary: equal ids, equal codes).
    ranked = (
        queries.join(symbols.lazy(), on=Fill.SYMBOL, how="inner")
        .select(_ROW, _account_code(), "symbol_code",
                _symbol_clock(pl.col("symbol_code"), pl.col(Fill.TIMESTAMP), start).alias("clock"))
        .sort("clock")
        .with_columns((clock != clock.shift()).fill_null(True).alias("first"))
        .with_columns((pl.col("first").cum_sum().cast(pl.Int64) - 1).alias("rank"))
        .collect()  # read twice below; its distinct clocks are searched
    )
    times = ranked.filter(pl.col("first")).select("clock", "rank", "symbol_code")
    # Each order as the ranks [a, b) of the fill times at which it is live (placed <= t <= end): the
    # distinct clocks are sorted and rank = their index, so a binary search replaces sort + join_asof.
    time_clocks = pl.lit(times.get_column("clock"))
    spans = (
        _resting_orders(inputs).join(symbols.lazy(), on=Order.SYMBOL, how="inner")
        .select(_account_code(), "is_bid",
                # bids rank by price, asks by -price: the best quote is always the largest key
                pl.when(pl.col("is_bid")).then(pl.col(Order.PRICE)).otherwise(-pl.col(Order.PRICE)).alias("key"),
                _symbol_clock(pl.col("symbol_code"), pl.col("placed"), start).alias("placed"),
                _symbol_clock(pl.col("symbol_code"), pl.col("end"), start).alias("end"))
        .select("account", "is_bid", "key",
                time_clocks.search_sorted(pl.col("placed"), side="left").cast(pl.Int64).alias("a"),
                time_clocks.search_sorted(pl.col("end"), side="right").cast(pl.Int64).alias("b"))
        .filter(pl.col("a") < pl.col("b"))  # a past the symbol's last time / b before its first: no overlap
    )
    # Cut [a, b) into tree blocks: at level k (block width w = B^k) the whole blocks [lo, hi) minus those
    # already covered by whole blocks of level k+1. A block is a slot = block x 16 + level; node = slot x 2
    # + is_bid.
    a, b, level = pl.col("a"), pl.col("b"), pl.col("level")
    width = pl.lit(branching, pl.Int64).pow(level)
    parent = width * branching
    lo, hi = (a + width - 1) // width, b // width
    parent_lo, parent_hi = (a + parent - 1) // parent, b // parent
    has_parent = parent_lo < parent_hi
    # The blocks of a level are the runs [lo, first_end) and [second_start, hi): block i of the level is
    # lo + i below n_first = first_end - lo, second_start + i - n_first above (one int range, no list concat).
    first_end = pl.when(has_parent).then(parent_lo * branching).otherwise(hi)
    second_start = pl.when(has_parent).then(parent_hi * branching).otherwise(hi)
    i, n_first = pl.col("i"), pl.col("n_first")
    block = pl.when(i < n_first).then(pl.col("lo") + i).otherwise(pl.col("second_start") + i - n_first)
    rows = (
        spans.with_columns(_levels(b - a).alias("level"))
        .explode("level")
        .select("account", "key", "is_bid", "level", lo.alias("lo"), (first_end - lo).alias("n_first"),
                second_start.alias("second_start"),
                pl.int_ranges(0, first_end - lo + hi - second_start).alias("i"))
        .explode("i")
        .select(((block * 16 + level) * 2 + pl.col("is_bid").cast(pl.Int64)).alias("node"), "account", "key")
        .cache()  # read twice below
    )
    # Per node the best key and its account, and the best key of any other account.
    best = rows.group_by("node").agg(pl.col("key").max().alias("best_key"),
                                     pl.col("account").max_by("key").alias("best_account"))
    other = (
        rows.join(best.select("node", "best_account"), on="node", how="inner")
        .filter(pl.col("account") != pl.col("best_account"))
        .group_by("node").agg(pl.col("key").max().alias("other_key"))
    )
    nodes = best.join(other, on="node", how="left").select(
        (pl.col("node") // 2).alias("slot"), (pl.col("node") % 2 == 1).alias("is_bid"), "best_key",
        "best_account", "other_key").collect()
    # A fill looks up the block holding its rank at each level, level by level (tens of millions of fills
    # times the levels would not fit at once): the best key of an account other than its own. A level past
    # the fill's symbol finds no block: blocks never cross symbols (they lie inside an order's range).
    queries = ranked.select(_ROW, "account", "rank")
    n_levels = math.floor(math.log(times.height, branching) + 1e-9) + 1 if times.height else 0  # as `_levels`
    quotes = queries.select(_ROW, pl.lit(None, pl.Float64).alias("bid_key"), pl.lit(None, pl.Float64).alias("ask_key"))
    for level_k in range(n_levels):
        slots = queries.select("account", ((pl.col("rank") // branching ** level_k) * 16 + level_k).alias("slot"))
        found = {}
        for side, is_bid_side in (("bid_key", True), ("ask_key", False)):
            found[side] = slots.join(nodes.filter(pl.col("is_bid") == is_bid_side), on="slot", how="left",
                                     maintain_order="left").select(
                pl.when(pl.col("best_account") != pl.col("account")).then(pl.col("best_key"))
                .otherwise(pl.col("other_key")).alias(side)).to_series()
        quotes = quotes.with_columns(*[pl.max_horizontal(pl.col(side), found[side]).alias(side) for side in found])
    return quotes.lazy().select(_ROW, pl.col("bid_key").alias("best_bid"), (-pl.col("ask_key")).alias("best_ask"))


def _effective_spread(inputs: FeatureInputs, takers: pl.LazyFrame, tape: pl.LazyFrame) -> pl.LazyFrame:
    bid, ask = pl.col("best_bid"), pl.col("best_ask")
    mid = pl.when(bid.is_not_null() & ask.is_not_null() & (bid < ask)).then((bid + ask) / 2).otherwise(
        pl.col("bounce_mid"))
    return (
        takers.join(_book_quotes(inputs, takers), on=_ROW, how="left")
        .join(_bounce_mid(takers, tape), on=_ROW, how="left")
        .group_by(ACCOUNT).agg((2 * (pl.col(Fill.PRICE) - mid).abs() / mid * _BPS).mean()
                               .alias("effective_spread_bps"))
    )


def price_impact_features(inputs: FeatureInputs) -> pl.LazyFrame:
    fills = inputs.fills.select(ACCOUNT, Fill.SYMBOL, Fill.TIMESTAMP, Fill.PRICE, Fill.DIRECTION,
                                Fill.IS_TAKER).with_row_index(_ROW)
    takers = fills.filter(pl.col(Fill.IS_TAKER))
    tape = _tape(inputs)
    result = (
        _vwap_features(fills, tape)
        .join(_reversal(takers, tape, inputs.settings.reversal_seconds), on=ACCOUNT, how="left")
        .join(_effective_spread(inputs, takers, tape), on=ACCOUNT, how="left")
    )
    return result.select(ACCOUNT, *[feature.name for feature in FEATURES])
