"""Price-impact features: how far the account's fills sit from the market, and what the price did after.

Market references come from the day's tape (`inputs.trades`, every trade, anonymous ones included); the
account side from `inputs.fills`. Prices are compared in basis points (bps) of the reference price. Every
mean is over fills (each fill counts once, whatever its size).

The taker fills are put once in (symbol, time) order: the bounce and the reversal look up the tape from it
(as-of joins by symbol) and the book numbers its distinct (symbol, time) pairs from it.

The effective spread needs the best bid and ask of the *other* accounts at the moment of each taker fill.
They are rebuilt from the order events without a quadratic join: the distinct (symbol, taker-fill time)
pairs are numbered 0..M-1, each resting order becomes the range [a, b) of those numbers during which it
was live (a search of its placement and its end among them, through a table of time buckets), and that
range is cut into the blocks of a binary interval tree (at most 2 blocks per level, levels up to log2 of
the range). Each block keeps its best price with that price's account, and the best price of any other
account; a fill looks up the one block holding it per level and takes the best price of an account other
than its own. The tree lives in flat numpy arrays indexed by block (no hashing, no sort): per level three
scatter-maximum passes over the blocks (best, its account, best of another account) and one gather per
fill, in chunks that stay in the cache. Work: O((orders + fills) x log2 M); keys are integers (hashes,
ranks, codes) so joins stay cheap.
"""
from __future__ import annotations

from datetime import datetime

import numpy as np
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

_BPS = 1e4

_ROW = "fill_row"
_BUY = Side.BUY.value
_SELL = Side.SELL.value


def _market_trades(inputs: FeatureInputs) -> pl.LazyFrame:
    """The day's market trades with a price, in file order."""
    return inputs.trades.select(Trade.SYMBOL, Trade.TIMESTAMP, Trade.SIDE, Trade.PRICE, Trade.QUANTITY).filter(
        pl.col(Trade.PRICE).is_not_null())


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


_CODE = "symbol_code"


def _ordered_takers(inputs: FeatureInputs, takers: pl.LazyFrame) -> tuple[pl.DataFrame, pl.Enum]:
    """The taker fills in (symbol, time) order, and the Enum of their symbols (`_CODE`: its physical code).

    Columns: fill_row, account_id, `_CODE`, timestamp, price, direction, clock (the sort key, see
    `_symbol_clock`) and rank, the number 0..M-1 of the fill's distinct clock."""
    symbols = pl.Enum(takers.select(Fill.SYMBOL).unique().drop_nulls().collect().get_column(Fill.SYMBOL).sort())
    clock = pl.col("clock")
    ordered = (
        takers.select(_ROW, ACCOUNT, _symbol_code(Fill.SYMBOL, symbols), Fill.TIMESTAMP, Fill.PRICE, Fill.DIRECTION)
        .with_columns(_symbol_clock(pl.col(_CODE), pl.col(Fill.TIMESTAMP), inputs.start).alias("clock"))
        .sort("clock", nulls_last=True)
        .collect()
    )
    # The clock is the time within a symbol unless a time lies beyond its +-25 days: then sort by the time.
    code, stamp = pl.col(_CODE), pl.col(Fill.TIMESTAMP)
    if ordered.select(((code == code.shift()) & (stamp < stamp.shift())).any()).item():
        ordered = ordered.sort(_CODE, Fill.TIMESTAMP, nulls_last=True, maintain_order=True)
    return ordered.with_columns(
        ((clock != clock.shift()).fill_null(True).cum_sum().cast(pl.Int64) - 1).alias("rank")), symbols


def _symbol_code(column: str, symbols: pl.Enum) -> pl.Expr:
    """The symbol's number in `symbols` (UInt32), null for a symbol outside it."""
    return pl.col(column).cast(symbols, strict=False).to_physical().cast(pl.UInt32).alias(_CODE)


def _coded_tape(inputs: FeatureInputs, symbols: pl.Enum) -> pl.DataFrame:
    """The tape's trades on `symbols` in time order (tape order kept among equal timestamps): symbol code,
    time, is_buy / is_sell (the initiator), price."""
    tape = (
        _market_trades(inputs).select(_symbol_code(Trade.SYMBOL, symbols), Trade.TIMESTAMP,
                                      (pl.col(Trade.SIDE) == _BUY).alias("is_buy"),
                                      (pl.col(Trade.SIDE) == _SELL).alias("is_sell"), Trade.PRICE)
        .filter(pl.col(_CODE).is_not_null())
        .collect()
    )
    stamps = tape.get_column(Trade.TIMESTAMP)
    if stamps.has_nulls() or not stamps.is_sorted():  # a tape usually comes in time order: no sort then
        tape = tape.sort(Trade.TIMESTAMP, maintain_order=True)
    return tape


def _reversal(takers: pl.DataFrame, tape: pl.DataFrame, seconds: int) -> pl.DataFrame:
    """`takers` and `tape` are in time order within each symbol (`_ordered_takers`, `_coded_tape`)."""
    later = tape.select(_CODE, pl.col(Trade.TIMESTAMP).alias("t_after"), pl.col(Trade.PRICE).alias("price_after"))
    moved = (
        takers.select(ACCOUNT, _CODE, Fill.PRICE, Fill.DIRECTION,
                      (pl.col(Fill.TIMESTAMP) + pl.duration(seconds=seconds)).alias("t_after"))
        .join_asof(later, on="t_after", by=_CODE, strategy="backward", check_sortedness=False)
    )
    move = (pl.col("price_after") - pl.col(Fill.PRICE)) / pl.col(Fill.PRICE) * _BPS
    return moved.group_by(ACCOUNT).agg((-pl.col(Fill.DIRECTION) * move).mean().alias("reversal_bps"))


def _bounce_mid(takers: pl.DataFrame, tape: pl.DataFrame) -> pl.Series:
    """Per taker fill (in `takers` order): the mean of the last buy- and last sell-initiated tape prices
    strictly before the fill. `takers` and `tape` are in time order within each symbol."""
    out = takers.select(_CODE, Fill.TIMESTAMP)
    for side, name in (("is_buy", "last_buy"), ("is_sell", "last_sell")):
        last = tape.filter(pl.col(side)).select(_CODE, Trade.TIMESTAMP, pl.col(Trade.PRICE).alias(name))
        out = out.join_asof(last, on=Fill.TIMESTAMP, by=_CODE, strategy="backward",
                            allow_exact_matches=False, check_sortedness=False)
    return out.select(((pl.col("last_buy") + pl.col("last_sell")) / 2).alias("bounce_mid")).to_series()


def _resting_orders(inputs: FeatureInputs, symbols: pl.Enum) -> pl.LazyFrame:
    """Limit orders of the day on `symbols`: `_CODE`, account, is_bid, price, placed, end (null: live to the
    day's end).

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
    ).select(order_key, _symbol_code(Order.SYMBOL, symbols), ACCOUNT, (pl.col(Order.SIDE) == _BUY).alias("is_bid"),
             Order.PRICE, pl.col(Order.QUANTITY).alias("size"), pl.col(Order.TIMESTAMP).alias("placed")
             ).filter(pl.col(_CODE).is_not_null())
    cancelled = events.filter(event == OrderEvent.CANCEL.value).group_by(order_key).agg(
        pl.col(Order.TIMESTAMP).min().alias("cancelled"))
    filled = inputs.fills.filter(pl.col(Fill.ORDER_ID).is_not_null()).group_by(
        pl.struct(Fill.SYMBOL, Fill.ORDER_ID).hash().alias("order_key")).agg(
        pl.col(Fill.QUANTITY).sum().alias("filled"), pl.col(Fill.TIMESTAMP).max().alias("last_fill"))
    filled_out = pl.when(pl.col("filled") >= pl.col("size") * (1 - 1e-9)).then(pl.col("last_fill"))
    return (
        new.join(cancelled, on="order_key", how="left").join(filled, on="order_key", how="left")
        .select(_CODE, ACCOUNT, "is_bid", Order.PRICE, "placed",
                pl.min_horizontal("cancelled", filled_out).alias("end"))
    )


_CLOCK_BITS = 42  # microseconds from the day's start, offset into [1, 2^42 - 2] (+-25 days)


def _symbol_clock(symbol_code: pl.Expr, timestamp: pl.Expr, start: datetime) -> pl.Expr:
    """One sortable Int64 for (symbol, time): the symbol's code above the clock; a null time sorts last."""
    half = 1 << (_CLOCK_BITS - 1)
    clock = ((timestamp - start).dt.total_microseconds().clip(-half + 1, half - 2) + half).fill_null(
        (1 << _CLOCK_BITS) - 1)
    return symbol_code.cast(pl.Int64) * (1 << _CLOCK_BITS) + clock


def _account_code() -> pl.Expr:
    return pl.col(ACCOUNT).cast(pl.Categorical).to_physical().alias("account")


_CHUNK = 1 << 16  # rows per numpy step: its temporaries stay in the cache


def _quotes(inputs: FeatureInputs, takers: pl.DataFrame, symbols: pl.Enum) -> tuple[np.ndarray, np.ndarray]:
    """Best bid and best ask of the other accounts' live orders at each fill of `takers` (`_ordered_takers`,
    row for row); NaN where that side is empty."""
    start = inputs.start
    ranks = takers.get_column("rank")
    n_ranks = int(ranks[-1]) + 1 if len(ranks) else 0
    # The distinct clocks in order: rank = their index.
    times = takers.filter(ranks != ranks.shift().fill_null(-1)).get_column("clock").drop_nulls().to_numpy()
    orders = (
        _resting_orders(inputs, symbols)
        .select(_account_code(), "is_bid",
                # bids rank by price, asks by -price: the best quote is always the largest key
                pl.when(pl.col("is_bid")).then(pl.col(Order.PRICE)).otherwise(-pl.col(Order.PRICE)).alias("key"),
                _symbol_clock(pl.col(_CODE), pl.col("placed"), start).alias("placed"),
                _symbol_clock(pl.col(_CODE), pl.col("end"), start).alias("end"))
        .collect()
    )
    columns = {name: orders.get_column(name).to_numpy() for name in orders.columns}
    del orders
    # Each order as the ranks [a, b) of the fill times at which it is live (placed <= t <= end); a >= b:
    # live at none of them.
    index = np.int32 if n_ranks < 1 << 30 else np.int64  # node = 2 x block + side must fit
    a, b = _live_ranks(times, columns.pop("placed"), columns.pop("end"), len(symbols.categories), index)
    bid_key, ask_key = _best_of_others(ranks.to_numpy().astype(index), _account_code_of(takers),
                                       a, b, *[columns.pop(name) for name in ("is_bid", "key", "account")], n_ranks)
    return np.where(bid_key > -np.inf, bid_key, np.nan), np.where(ask_key > -np.inf, -ask_key, np.nan)


def _live_ranks(times: np.ndarray, placed: np.ndarray, end: np.ndarray, n_symbols: int,
                index: type) -> tuple[np.ndarray, np.ndarray]:
    """a = #times < placed and b = #times <= end (np.searchsorted left and right) for each order.

    A binary search over the tens of millions of times costs ~25 steps per order; instead the times are cut
    into at most 2 x len(times) + symbols buckets (symbol x equal clock slices): a table gives the times
    before each bucket and a short binary search finishes within the order's bucket (all of them when the
    times come in a burst)."""
    mask = (1 << _CLOCK_BITS) - 1
    offsets = times & mask
    low, high = (int(offsets.min()), int(offsets.max())) if len(times) else (0, 0)
    shift = 0
    while n_symbols * ((high - low) >> shift) > 2 * len(times):
        shift += 1
    width = ((high - low) >> shift) + 1  # buckets per symbol

    def bucket(clock: np.ndarray) -> np.ndarray:  # non-decreasing in the clock
        return (clock >> _CLOCK_BITS) * width + np.clip(((clock & mask) - low) >> shift, 0, width - 1)

    before = np.zeros(n_symbols * width + 1, dtype=index)  # times in the buckets below
    np.cumsum(np.bincount(bucket(times), minlength=n_symbols * width), out=before[1:])
    a, b = np.empty(len(placed), dtype=index), np.empty(len(placed), dtype=index)
    for c in range(0, len(placed), _CHUNK):
        rows = slice(c, c + _CHUNK)
        a[rows] = _bucket_search(times, placed[rows], bucket, before, right=False)
        b[rows] = _bucket_search(times, end[rows], bucket, before, right=True)
    return a, b


def _bucket_search(times: np.ndarray, clock: np.ndarray, bucket, before: np.ndarray, right: bool) -> np.ndarray:
    """np.searchsorted(times, clock, side) through the bucket table: a binary search within the bucket."""
    k = bucket(clock)
    lo, hi = before[k], before[k + 1]
    active = np.flatnonzero(lo < hi)
    below = np.less_equal if right else np.less
    while len(active):
        a, b = lo[active], hi[active]
        mid = (a + b) >> 1
        up = below(times[mid], clock[active])
        a, b = np.where(up, mid + 1, a), np.where(up, b, mid)
        lo[active], hi[active] = a, b
        active = active[a < b]
    return lo


def _account_code_of(frame: pl.DataFrame) -> np.ndarray:
    return frame.select(_account_code()).to_series().to_numpy()


def _best_of_others(rank: np.ndarray, account: np.ndarray, a: np.ndarray, b: np.ndarray, is_bid: np.ndarray,
                    key: np.ndarray, owner: np.ndarray, n_ranks: int) -> tuple[np.ndarray, np.ndarray]:
    """The binary interval tree: for each query (rank, account), the largest key among the spans [a, b)
    holding the rank (bids and asks apart) whose owner is another account; -inf when there is none.

    Level k holds the blocks [j 2^k, (j + 1) 2^k) of ranks; node 2 j + is_bid keeps the best key, its owner
    (the largest among equal best keys: any choice gives the same answers) and the best key of another
    owner. A span's cut at level k: its whole blocks lo..hi-1 minus those inside a whole block of level k+1,
    i.e. lo when lo is odd and hi - 1 when hi is odd (or both when no block of level k+1 fits)."""
    found = np.full((2, len(rank)), -np.inf)  # ask, bid
    side = is_bid.view(np.int8)
    n_nodes = 2 * (n_ranks + 1)  # a spare block: an empty span at level 0 may start at n_ranks
    best, best_owner, other = np.empty(n_nodes), np.empty(n_nodes, dtype=owner.dtype), np.empty(n_nodes)
    level, lo, hi = 0, a, b
    del a, b, is_bid  # the levels above read shrinking copies
    while len(lo):
        n_nodes = 2 * (((n_ranks - 1) >> level) + 2)
        level_best, level_owner, level_other = best[:n_nodes], best_owner[:n_nodes], other[:n_nodes]
        level_best.fill(-np.inf)
        level_owner.fill(0)
        level_other.fill(-np.inf)
        chunks = [slice(c, c + _CHUNK) for c in range(0, len(lo), _CHUNK)]
        for step in range(3):  # each pass needs the previous one complete
            for rows in chunks:
                for node, value, who in _level_blocks(lo[rows], hi[rows], side[rows], key[rows], owner[rows]):
                    if step == 0:
                        np.maximum.at(level_best, node, value)
                    elif step == 1:  # a block absent from the cut (-inf) only ever names an empty node's owner
                        np.maximum.at(level_owner, node, np.where(value == level_best[node], who, 0))
                    else:
                        np.maximum.at(level_other, node, np.where(who != level_owner[node], value, -np.inf))
        for c in range(0, len(rank), _CHUNK):
            rows = slice(c, c + _CHUNK)
            block, own = (rank[rows] >> level) * 2, account[rows]
            for is_bid_side in (0, 1):
                node = block + is_bid_side
                answer = np.where(level_owner[node] != own, level_best[node], level_other[node])
                np.maximum(found[is_bid_side, rows], answer, out=found[is_bid_side, rows])
        # The next level: the whole blocks of width 2^(level+1), kept where there is at least one.
        parts = []
        for rows in chunks:
            up_lo, up_hi = (lo[rows] + 1) >> 1, hi[rows] >> 1
            keep = up_lo < up_hi
            parts.append((up_lo[keep], up_hi[keep], side[rows][keep], key[rows][keep], owner[rows][keep]))
        lo, hi, side, key, owner = (np.concatenate(column) for column in zip(*parts))
        level += 1
    return found[1], found[0]


def _level_blocks(lo: np.ndarray, hi: np.ndarray, side: np.ndarray, key: np.ndarray, owner: np.ndarray):
    """The (node, key, owner) rows of one level's cut of spans [lo, hi) (in blocks of the level): the left
    blocks lo, keyed -inf where not in the cut (a no-op for a maximum; most spans have one), and the right
    blocks hi - 1 where in the cut."""
    inner = ((lo + 1) >> 1) < (hi >> 1)  # a block of the next level fits
    left = (~inner | (lo & 1 == 1)) & (lo < hi)
    right = np.flatnonzero(np.where(inner, hi & 1 == 1, hi - lo > 1))
    return ((lo * 2 + side, np.where(left, key, -np.inf), owner),
            ((hi[right] - 1) * 2 + side[right], key[right], owner[right]))


def _book_quotes(inputs: FeatureInputs, takers: pl.LazyFrame) -> pl.LazyFrame:
    """fill_row -> best bid and best ask of the other accounts' live orders at the fill's time."""
    ordered, symbols = _ordered_takers(inputs, takers)
    best_bid, best_ask = _quotes(inputs, ordered, symbols)
    return pl.LazyFrame({_ROW: ordered.get_column(_ROW), "best_bid": best_bid, "best_ask": best_ask}).with_columns(
        pl.col("best_bid", "best_ask").fill_nan(None))


def _effective_spread(takers: pl.DataFrame, quotes: tuple[np.ndarray, np.ndarray],
                      tape: pl.DataFrame) -> pl.DataFrame:
    """`quotes`: best bid and best ask per row of `takers` (`_quotes`)."""
    bid, ask = pl.col("best_bid"), pl.col("best_ask")
    mid = pl.when(bid.is_not_null() & ask.is_not_null() & (bid < ask)).then((bid + ask) / 2).otherwise(
        pl.col("bounce_mid"))
    return (
        takers.select(ACCOUNT, Fill.PRICE)
        .with_columns(*[pl.Series(name, side).fill_nan(None) for name, side in zip(("best_bid", "best_ask"), quotes)],
                      _bounce_mid(takers, tape))
        .group_by(ACCOUNT).agg((2 * (pl.col(Fill.PRICE) - mid).abs() / mid * _BPS).mean()
                               .alias("effective_spread_bps"))
    )


def price_impact_features(inputs: FeatureInputs) -> pl.LazyFrame:
    fills = inputs.fills.select(ACCOUNT, Fill.SYMBOL, Fill.TIMESTAMP, Fill.PRICE, Fill.DIRECTION,
                                Fill.IS_TAKER).with_row_index(_ROW)
    takers, symbols = _ordered_takers(inputs, fills.filter(pl.col(Fill.IS_TAKER)))
    quotes = _quotes(inputs, takers, symbols)  # first: the order book is the largest step
    tape = _coded_tape(inputs, symbols)
    result = (
        _vwap_features(fills, _market_trades(inputs))  # a VWAP needs no order
        .join(_reversal(takers, tape, inputs.settings.reversal_seconds).lazy(), on=ACCOUNT, how="left")
        .join(_effective_spread(takers, quotes, tape).lazy(), on=ACCOUNT, how="left")
    )
    return result.select(ACCOUNT, *[feature.name for feature in FEATURES])
