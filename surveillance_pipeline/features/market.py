"""Market features: per symbol and 1-second / 1-minute / 1-hour bar, what the tape (and the book) did.

One long table keyed by `symbol`, `bar` ("1s" | "1m" | "1h") and `bar_start` (UTC, the bar covers
[bar_start, bar_start + bar)), then exactly the MARKET_FEATURES columns. Only bars with at least one trade
are emitted (a second without trades has no 1-second bar). Anonymous tapes (no account ids, no order ids)
get every feature; `distinct_buyers` is then null. Rows come ordered by bar size (1s, 1m, 1h), symbol
(alphabetical) and bar_start; counts are Int64, the other features Float64.

Conventions:
- Trades are ordered by symbol and timestamp; trades at the same instant keep their input order.
- Only the day's trades are read (not `inputs.history`); nothing assumes the tape spans one day, so a
  multi-day tape gives the bars of every day.
- Returns: `return_log` = ln(close / close of the previous emitted bar of the same symbol and bar size),
  null for the symbol's first bar of the day. Returns never cross symbols.
- Realised volatility of a bar is sqrt(sum of squared log returns of the next finer steps that end inside
  the bar): trade-to-trade returns for 1-second bars, the 1-second bars' `return_log` for 1-minute bars,
  the 1-minute bars' `return_log` for 1-hour bars. The first step of a bar starts at the previous bar's
  last price (the previous trade, or the previous finer bar's close), so the steps add up to the bar's
  `return_log`, and a 1-second bar with a single trade has realised_vol = |return_log|. Null when the bar
  has no such return (the symbol's first bar of the day with one trade / one finer bar).
- Rush orders (La Morgia et al., ICCCN 2020: market buy orders executed as several trades at the same
  instant, the strongest pump signal): buy-initiated trades (taker side `buy`) of a symbol are grouped by
  `buyer_order_id` when the trade has one, otherwise by their timestamp floored to
  `features.rush_window_ms` (epoch-aligned windows); a group of >= 2 trades is one rush order, counted in
  the bar of its first trade.
- Spread, in basis points:
  * symbols with order events on the day, 1-minute and 1-hour bars: the quoted spread at the bar's end,
    (best ask - best bid) / mid x 10 000 from the live resting orders. An order (non-market, with a price)
    is live from its `new` (or `modify`, at the modified price) until its next `modify`, its `cancel` or the
    end of the input: the interval [event, next event), so at the instant bar_end it counts if it started
    before bar_end and did not end before it (a cancel at exactly bar_end belongs to the next bar). Fills
    (trades and `fill` events) are ignored: a fully filled order that is never cancelled stays live to the
    end. Each finite interval is exploded into the bar ends it spans (most orders live less than a bar, so
    this stays linear); intervals open to the end enter through a running max (bids) / min (asks) and an
    as-of join. Null when one side is empty or the book is crossed or locked (ask <= bid: impossible in a
    live book, the sign of stale orders, e.g. filled ones). "Symbols with order events" = symbols with
    `new` / `modify` / `cancel` events; a symbol with events but no resting order gets null, not Roll's.
  * 1-second bars, and symbols without order events: Roll's (1984) estimator from the bar's trade prices,
    2 sqrt(-cov(dp_t, dp_t-1)) / mean trade price x 10 000, where dp are consecutive price changes
    inside the bar (a pair counts when the three trades p_t-2, p_t-1, p_t all lie in the bar; sample
    covariance, ddof 1). Null with fewer than 4 trades or when the covariance is >= 0. The order-based
    spread is not computed for 1-second bars: exploding every order interval into 1-second bar ends costs
    about one row per order-second (~75 rows per trade on the scenario generator's tapes).

Implementation: the trades are read once and compacted (symbol as an Enum, account and order ids as 64-bit
hashes) and sorted by symbol and time once: a bar is then a slice of that order, and a coarser bar a run of
finer ones. Sums and extremes are numpy reductions over the slices, a coarser bar's from its finer bars';
only the distinct buyers and Roll's sums (where Roll's estimator is the spread) are read from the trades
for every bar size. Of the orders, a hash-set lookup splits off the never-cancelled ones (most), reduced to
the best price per symbol, side and minute of their start; only the cancelled ones are joined to their
cancel. The stages are collected eagerly (each is read by several later ones), the independent ones side by
side with `pl.collect_all`, and the result is returned as a LazyFrame.
Linear apart from the sorts: joins are equi-joins on keys (a cancelled order with its cancel, a bar with
its book), never a pairwise comparison of trades or orders.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from surveillance_pipeline.contract import MARKET_ORDER_TYPE, Order, OrderEvent, Side, Trade
from surveillance_pipeline.features.base import FeatureInputs, FeatureSpec

GROUP = "market"
BAR, BAR_START = "bar", "bar_start"
BARS: tuple[str, ...] = ("1s", "1m", "1h")  # finest first: each bar's realised_vol reads the finer bars
ORDER_SPREAD_BARS: tuple[str, ...] = ("1m", "1h")  # bars whose spread comes from the book when orders exist
MIN_ROLL_TRADES = 4  # two (dp_t, dp_t-1) pairs: the least a sample covariance needs

MARKET_FEATURES = [
    FeatureSpec("trades", "trades", "trades in the bar", GROUP),
    FeatureSpec("volume", "base units", "sum of the trades' quantities", GROUP),
    FeatureSpec("notional", "quote units", "sum of the trades' quote_quantity (price x quantity where it is "
                "missing)", GROUP),
    FeatureSpec("buy_share", "share", "share of the bar's volume whose taker side is buy; null when the volume "
                "is 0", GROUP),
    FeatureSpec("open", "price", "price of the bar's first trade", GROUP),
    FeatureSpec("high", "price", "highest trade price in the bar", GROUP),
    FeatureSpec("low", "price", "lowest trade price in the bar", GROUP),
    FeatureSpec("close", "price", "price of the bar's last trade", GROUP),
    FeatureSpec("return_log", "log return", "ln(close / close of the symbol's previous bar of the same size); "
                "null for the symbol's first bar of the day", GROUP),
    FeatureSpec("realised_vol", "log return", "sqrt of the sum of squared log returns inside the bar: "
                "trade-to-trade returns for 1s bars, the 1s bars' return_log for 1m bars, the 1m bars' "
                "return_log for 1h bars (the first step starts at the previous bar's close); null without any "
                "such return", GROUP),
    FeatureSpec("distinct_buyers", "accounts", "distinct buyer_id among the bar's trades; null when none of "
                "them carries a buyer_id (anonymous tapes)", GROUP),
    FeatureSpec("rush_orders", "orders", "buy orders executed as >= 2 trades (La Morgia et al. 2020): "
                "buy-initiated trades grouped by buyer_order_id, or without one by timestamp floored to "
                "features.rush_window_ms; counted in the bar of the group's first trade", GROUP),
    FeatureSpec("spread_bps", "bps", "1m and 1h bars of symbols with order events: (best ask - best bid) / mid "
                "of the live resting orders at the bar's end (fills ignored; null when a side is empty or the "
                "book is crossed); 1s bars and symbols without orders: Roll's 2 sqrt(-cov(dp_t, dp_t-1)) of the "
                "bar's trade prices / mean price (null with < 4 trades or cov >= 0)", GROUP),
]
FEATURE_NAMES = [spec.name for spec in MARKET_FEATURES]

# working columns
_RANK, _IS_BUY, _NOTIONAL, _BUYER, _BUYER_ORDER = "_rank", "_is_buy", "_notional", "_buyer", "_buyer_order"
_RET, _DP, _DP_PREV, _TS2, _GROUP = "_ret", "_dp", "_dp_prev", "_ts2", "_group"
_BUY_VOLUME, _MEAN_PRICE = "_buy_volume", "_mean_price"
_N_PAIRS, _SX, _SY, _SXY, _SQ, _N_RET = "_n_pairs", "_sx", "_sy", "_sxy", "_sq", "_n_ret"
_ORDER, _NEW, _CANCEL, _IS_BID, _RESTING = "_order", "_new", "_cancel", "_is_bid", "_resting"
_END, _BID, _ASK, _BEST = "_end", "_bid", "_ask", "_best"
_FIRST_BAR, _LAST_BAR, _BAR_END, _HAS_ORDERS = "_first_bar", "_last_bar", "_bar_end", "_has_orders"
_BUCKET, _CANCELLED = "_bucket", "_cancelled"
_OPEN_BUCKET = ORDER_SPREAD_BARS[0]  # every order-spread bar ends on a boundary of the finest one
INT64_MAX = 2**63 - 1


def _hashed(column: str) -> pl.Expr:
    """A text id as its 64-bit hash, null kept null: far cheaper to sort, group and count than the text.
    (Two ids of one day colliding has a probability of about n^2 / 2^65, ~3e-6 for 10 M ids.)"""
    return pl.when(pl.col(column).is_not_null()).then(pl.col(column).hash())


def _prepared_trades(inputs: FeatureInputs) -> pl.DataFrame:
    """The day's trades compacted to numbers (symbol as an Enum of the day's symbols in alphabetical order,
    ids hashed) and stably sorted by symbol and time, with the per-trade columns every bar size reads."""
    trades = inputs.trades.select(
        pl.col(Trade.SYMBOL).cast(pl.Categorical),
        Trade.TIMESTAMP, Trade.PRICE, Trade.QUANTITY,
        pl.coalesce(Trade.QUOTE_QUANTITY, pl.col(Trade.PRICE) * pl.col(Trade.QUANTITY)).alias(_NOTIONAL),
        (pl.col(Trade.SIDE) == Side.BUY.value).alias(_IS_BUY),
        _hashed(Trade.BUYER_ID).alias(_BUYER),
        _hashed(Trade.BUYER_ORDER_ID).alias(_BUYER_ORDER),
    ).collect()
    symbols = pl.Enum(sorted(trades[Trade.SYMBOL].unique().drop_nulls().cast(pl.String).to_list()))
    ranked = trades.lazy().with_columns(pl.col(Trade.SYMBOL).cast(symbols)).with_columns(
        pl.col(Trade.SYMBOL).to_physical().alias(_RANK))
    if trades[Trade.TIMESTAMP].is_sorted():  # the usual tape: a stable sort by symbol keeps time order
        ranked = ranked.sort(_RANK, maintain_order=True)
    elif trades.height:  # one int64 key, symbol rank x (time span + 1) + time offset: cheaper than two keys
        offset = (pl.col(Trade.TIMESTAMP) - pl.col(Trade.TIMESTAMP).min()).dt.total_microseconds()
        span = trades.select(offset.max()).item()
        if (len(symbols.categories) + 1) * (span + 1) < INT64_MAX:
            ranked = ranked.sort(pl.col(_RANK).cast(pl.Int64) * (span + 1) + offset, maintain_order=True)
        else:  # an implausibly long tape
            ranked = ranked.sort(_RANK, Trade.TIMESTAMP, maintain_order=True)
    same = pl.col(_RANK) == pl.col(_RANK).shift(1)
    price = pl.col(Trade.PRICE)
    return ranked.with_columns(
        pl.when(same).then(price.log() - price.log().shift(1)).alias(_RET),
        pl.when(same).then(price - price.shift(1)).alias(_DP),
        pl.col(Trade.TIMESTAMP).shift(2).alias(_TS2),
    ).with_columns(  # null unless t-2 is of the same symbol
        pl.when(same).then(pl.col(_DP).shift(1)).alias(_DP_PREV)
    ).collect().rechunk()  # contiguous columns: numpy reads them without a copy


def _trade_aggregates(trades: pl.DataFrame, roll_bars: tuple[str, ...]) -> dict[str, pl.DataFrame]:
    """Per bar size, everything a bar takes straight from its trades, sorted by symbol and bar_start (the
    sums of Roll's estimator only for the `roll_bars`: null for the others, whose spread is the book's).

    A bar is a slice of the sorted trades, and a coarser bar a run of finer bars: sums and extremes are numpy
    reductions over the slices (`reduceat`; a group_by pays ~100 ns per group and aggregation, and a big day
    has ~1.7 M one-second bars), a coarser bar's reduced from its finer bars' (its realised-vol terms from
    their `return_log`). Only the Roll pairs (which depend on the bar) and the distinct buyers are read from
    the trades again for each bar size, the latter by a group_by over the sorted bar numbers (no hashing).
    Prices, quantities and sides are never null (`TRADE_REQUIRED`)."""
    price = trades[Trade.PRICE].to_numpy()
    additive = {  # summed over the trades, then over the finer bars
        values.name: values.to_numpy() for values in trades.lazy().select(
            pl.col(Trade.QUANTITY).alias("volume"), pl.col(_NOTIONAL).alias("notional"),
            (pl.col(Trade.QUANTITY) * pl.col(_IS_BUY)).alias(_BUY_VOLUME), pl.col(Trade.PRICE).alias(_MEAN_PRICE),
            (pl.col(_RET) ** 2).fill_null(0.0).alias(_SQ), pl.col(_RET).is_not_null().cast(pl.Int64).alias(_N_RET),
        ).collect().iter_columns()}
    high, low = price, price
    buyer = pl.col(_BUYER)
    tables: dict[str, pl.DataFrame] = {}
    finer_starts: np.ndarray | None = None
    for bar in BARS:
        start = pl.col(Trade.TIMESTAMP).dt.truncate(bar)
        first = ((pl.col(_RANK) != pl.col(_RANK).shift(1)) | (start != start.shift(1))).fill_null(True)
        pair = pl.col(_DP_PREV).is_not_null() & (pl.col(_TS2).dt.truncate(bar) == start)  # t-2 .. t in the bar
        x, y = pl.when(pair).then(pl.col(_DP)), pl.when(pair).then(pl.col(_DP_PREV))
        roll = [pair.cast(pl.Int64).alias(_N_PAIRS), x.fill_null(0.0).alias(_SX), y.fill_null(0.0).alias(_SY),
                (x * y).fill_null(0.0).alias(_SXY)] if bar in roll_bars else []
        per_trade = trades.lazy().select(first.alias("_first"), *roll).collect()
        starts = per_trade.select(pl.arg_where("_first")).to_series().to_numpy()
        ends = np.append(starts, trades.height)[1:] - 1
        # the bar's first finer bar (the trades themselves for the finest): sums and extremes of its finer bars
        inner = starts if finer_starts is None else np.searchsorted(finer_starts, starts)
        additive = {name: np.add.reduceat(values, inner) for name, values in additive.items()}
        high, low = np.fmax.reduceat(high, inner), np.fmin.reduceat(low, inner)
        distinct = (
            pl.DataFrame([per_trade["_first"].cum_sum().alias(_GROUP).set_sorted(), trades[_BUYER]]).lazy()
            .group_by(_GROUP, maintain_order=True)
            .agg(pl.when(buyer.null_count() < pl.len())
                 .then(buyer.n_unique() - buyer.is_null().any().cast(pl.Int64)).alias("distinct_buyers"))
            .collect()
        )
        table = trades.select(_RANK, Trade.SYMBOL, Trade.TIMESTAMP, Trade.PRICE)[starts].select(
            _RANK, Trade.SYMBOL, start.alias(BAR_START), pl.col(Trade.PRICE).alias("open")).with_columns(
            pl.Series("trades", ends - starts + 1, pl.Int64),
            *[pl.Series(name, additive[name]) for name in ("volume", "notional", _BUY_VOLUME)],
            pl.Series("high", high), pl.Series("low", low), pl.Series("close", price[ends]),
            pl.Series(_MEAN_PRICE, additive[_MEAN_PRICE] / (ends - starts + 1)),
            distinct["distinct_buyers"],
            *[pl.Series(name, np.add.reduceat(per_trade[name].to_numpy(), starts)) if roll
              else pl.lit(None, pl.Float64).alias(name) for name in (_N_PAIRS, _SX, _SY, _SXY)],
            pl.Series(_SQ, additive[_SQ]), pl.Series(_N_RET, additive[_N_RET]),
        ).with_columns(
            pl.when(pl.col(_RANK) == pl.col(_RANK).shift(1))
            .then((pl.col("close") / pl.col("close").shift(1)).log()).alias("return_log"),
        )
        tables[bar] = table
        # a coarser bar's realised vol sums its finer bars' squared return_log
        returns = table["return_log"]
        additive[_SQ] = (returns ** 2).fill_null(0.0).to_numpy()
        additive[_N_RET] = returns.is_not_null().cast(pl.Int64).to_numpy()
        finer_starts = starts
    return tables


def _rush_orders(trades: pl.DataFrame, window_ms: int) -> pl.LazyFrame:
    """One row (symbol rank, time of its first trade) per rush order: >= 2 buy-initiated trades sharing a
    buyer order id, or, for trades without one, one rush_window_ms window."""
    buys = trades.lazy().filter(pl.col(_IS_BUY))
    first = [pl.len().alias("_n"), pl.col(Trade.TIMESTAMP).min()]
    by_order = buys.filter(pl.col(_BUYER_ORDER).is_not_null()).group_by(_RANK, _BUYER_ORDER).agg(*first)
    by_window = buys.filter(pl.col(_BUYER_ORDER).is_null()).group_by(
        _RANK, pl.col(Trade.TIMESTAMP).dt.truncate(f"{window_ms}ms").alias("_window")).agg(*first)
    return (
        pl.concat([by_order.select(_RANK, Trade.TIMESTAMP, "_n"), by_window.select(_RANK, Trade.TIMESTAMP, "_n")])
        .filter(pl.col("_n") >= 2).select(_RANK, Trade.TIMESTAMP)
    )


def _roll_spread_bps() -> pl.Expr:
    n = pl.col(_N_PAIRS)
    cov = (pl.col(_SXY) - pl.col(_SX) * pl.col(_SY) / n) / (n - 1)
    return (
        pl.when((pl.col("trades") >= MIN_ROLL_TRADES) & (n >= 2) & (cov < 0))
        .then(2 * (-cov).sqrt() / pl.col(_MEAN_PRICE) * 10_000)
    )


def _order_events(inputs: FeatureInputs, symbols: pl.Enum) -> pl.DataFrame:
    """The day's `new` / `modify` / `cancel` events compacted to numbers; events of symbols without trades are
    dropped (they have no bars)."""
    event = pl.col(Order.EVENT)
    return (
        inputs.orders
        .filter(event.is_in([OrderEvent.NEW.value, OrderEvent.MODIFY.value, OrderEvent.CANCEL.value]))
        .select(
            pl.col(Order.SYMBOL).cast(symbols, strict=False).to_physical().alias(_RANK),
            Order.ORDER_ID,
            Order.TIMESTAMP,
            (event == OrderEvent.NEW.value).alias(_NEW),
            (event == OrderEvent.CANCEL.value).alias(_CANCEL),
            pl.when(pl.col(Order.SIDE).is_not_null()).then(pl.col(Order.SIDE) == Side.BUY.value).alias(_IS_BID),
            Order.PRICE,
            (pl.col(Order.ORDER_TYPE).is_null() | (pl.col(Order.ORDER_TYPE) != MARKET_ORDER_TYPE)).alias(_RESTING),
        )
        .filter(pl.col(_RANK).is_not_null())
        # the order key (symbol, order id) as one 64-bit number: the id's hash with the symbol rank mixed in
        .with_columns((pl.col(Order.ORDER_ID).hash() ^ (pl.col(_RANK).cast(pl.UInt64) * (1 << 40))).alias(_ORDER))
        .drop(Order.ORDER_ID)
        .collect()
    )


def _order_segments(events: pl.DataFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Resting-order intervals, one per `new` / `modify` at its price until the order's next lifecycle event
    (fills ignored): the finite ones (symbol rank, is_bid, price, start, `_end`), and for those open to the
    end of the input, the best price per symbol and `_bucket` (the 1-minute bar of their start): the highest
    bid `_bid` and lowest ask `_ask` (null without such an order)."""
    columns = [_RANK, _IS_BID, Order.PRICE, Order.TIMESTAMP, _END]
    if (events[_NEW] | events[_CANCEL]).all():
        # the common case, no `modify`: a `new` lives until the order's first cancel. Most orders are never
        # cancelled: a hash-set lookup splits them off, and only the cancelled ones are joined to their cancel.
        cancels = (events.lazy().filter(_CANCEL).group_by(_ORDER).agg(pl.col(Order.TIMESTAMP).min().alias(_END))
                   .collect())
        cancelled = events[_ORDER].is_in(cancels[_ORDER].implode()).alias(_CANCELLED)
        resting = events.lazy().with_columns(cancelled).filter(
            pl.col(_NEW) & pl.col(_RESTING) & pl.col(Order.PRICE).is_not_null())
        finite = resting.filter(_CANCELLED).join(cancels.lazy(), on=_ORDER, how="inner").select(columns)
        opened = resting.filter(~pl.col(_CANCELLED))
    else:
        same = pl.col(_ORDER) == pl.col(_ORDER).shift(-1)
        segments = (
            events.lazy()
            .sort(_ORDER, Order.TIMESTAMP, maintain_order=True)
            .with_columns(pl.when(same).then(pl.col(Order.TIMESTAMP).shift(-1)).alias(_END))
            .with_columns(
                pl.col(Order.PRICE, _IS_BID, _RESTING).forward_fill().over(_ORDER),
                # a cancel ends the order: later events of the same id do not revive it
                pl.col(_CANCEL).cum_sum().over(_ORDER).alias("_cancels_before"),
            )
            .filter(~pl.col(_CANCEL) & (pl.col("_cancels_before") == 0) & pl.col(Order.PRICE).is_not_null()
                    & pl.col(_RESTING))
            .select(columns)
            .collect()
        )
        finite, opened = segments.lazy().filter(pl.col(_END).is_not_null()), segments.lazy().filter(
            pl.col(_END).is_null())
    is_bid, price = pl.col(_IS_BID), pl.col(Order.PRICE)
    open_best = opened.group_by(_RANK, pl.col(Order.TIMESTAMP).dt.truncate(_OPEN_BUCKET).alias(_BUCKET)).agg(
        pl.when(is_bid).then(price).max().alias(_BID), pl.when(~is_bid).then(price).min().alias(_ASK))
    return finite, open_best


def _book_at_bar_ends(finite: pl.DataFrame, open_best: pl.DataFrame, bars: pl.DataFrame, bar: str) -> pl.LazyFrame:
    """Best bid and ask of the live resting orders at the end of each bar (symbol rank, bar_start)."""
    is_bid = pl.col(_IS_BID)
    # a finite interval [start, end) is live at the bar ends e with start < e <= end: the bars starting
    # from truncate(start) to truncate(end) - bar
    finite_best = (
        finite.lazy()
        .with_columns(pl.col(Order.TIMESTAMP).dt.truncate(bar).alias(_FIRST_BAR),
                      pl.col(_END).dt.truncate(bar).dt.offset_by(f"-{bar}").alias(_LAST_BAR))
        .filter(pl.col(_LAST_BAR) >= pl.col(_FIRST_BAR))
        .select(_RANK, _IS_BID, Order.PRICE, pl.datetime_ranges(_FIRST_BAR, _LAST_BAR, bar).alias(BAR_START))
        .explode(BAR_START)
        .group_by(_RANK, BAR_START)
        .agg(pl.when(is_bid).then(pl.col(Order.PRICE)).max().alias(_BID),
             pl.when(~is_bid).then(pl.col(Order.PRICE)).min().alias(_ASK))
    )
    book = (
        bars.lazy().select(_RANK, BAR_START, pl.col(BAR_START).dt.offset_by(bar).alias(_BAR_END))
        .join(finite_best, on=[_RANK, BAR_START], how="left")
        .sort(_BAR_END)
    )
    # intervals open to the end are live at every bar end after their start: a running best price per
    # symbol and side over the 1-minute buckets of their starts (bar ends are bucket boundaries, so the
    # buckets starting before a bar's end hold exactly the orders started before it), read with an as-of join
    for name, running, combine in ((_BID, pl.col(_BID).cum_max(), pl.max_horizontal),
                                   (_ASK, pl.col(_ASK).cum_min(), pl.min_horizontal)):
        best = (open_best.lazy().filter(pl.col(name).is_not_null()).sort(_BUCKET)
                .select(_RANK, _BUCKET, running.over(_RANK).alias(_BEST)))
        book = (
            book.join_asof(best, left_on=_BAR_END, right_on=_BUCKET, by=_RANK,
                           allow_exact_matches=False, check_sortedness=False)
            .with_columns(combine(name, _BEST).alias(name))
            .select(_RANK, BAR_START, _BAR_END, _BID, _ASK)
        )
    return book.select(_RANK, BAR_START, _BID, _ASK)


def _quoted_spread_bps() -> pl.Expr:
    bid, ask = pl.col(_BID), pl.col(_ASK)
    return pl.when(ask > bid).then((ask - bid) / ((ask + bid) / 2) * 10_000)


def market_features(inputs: FeatureInputs) -> pl.LazyFrame:
    """The market feature table (see the module docstring); built eagerly in stages, returned lazy."""
    trades = _prepared_trades(inputs)
    events = _order_events(inputs, trades.schema[Trade.SYMBOL])
    order_ranks = events.select(pl.col(_RANK).unique(), pl.lit(True).alias(_HAS_ORDERS))
    # the group_bys below are independent and mostly single-threaded: run them side by side
    finite, open_best, rush_groups = pl.collect_all([
        *_order_segments(events), _rush_orders(trades, inputs.settings.rush_window_ms)])
    # Roll's estimator for the bars whose spread is not the book's (for a symbol without order events)
    books_everywhere = trades.select(pl.col(_RANK).unique().is_in(order_ranks[_RANK].implode()).all()).item()
    by_bar = _trade_aggregates(trades, tuple(b for b in BARS if not (books_everywhere and b in ORDER_SPREAD_BARS)))
    books = dict(zip(ORDER_SPREAD_BARS, pl.collect_all(
        [_book_at_bar_ends(finite, open_best, by_bar[bar], bar) for bar in ORDER_SPREAD_BARS])
        if order_ranks.height else []))
    tables: list[pl.DataFrame] = []
    for bar, bars in by_bar.items():
        lazy = bars.lazy()
        rush = rush_groups.lazy().group_by(_RANK, pl.col(Trade.TIMESTAMP).dt.truncate(bar).alias(BAR_START)).agg(
            pl.len().cast(pl.Int64).alias("rush_orders"))
        lazy = lazy.join(rush, on=[_RANK, BAR_START], how="left", maintain_order="left")
        spread = _roll_spread_bps()
        if bar in books:
            lazy = (lazy.join(books[bar].lazy(), on=[_RANK, BAR_START], how="left", maintain_order="left")
                    .join(order_ranks.lazy(), on=_RANK, how="left", maintain_order="left"))
            spread = pl.when(pl.col(_HAS_ORDERS).fill_null(False)).then(_quoted_spread_bps()).otherwise(spread)
        table = lazy.select(
            _RANK,
            pl.col(Trade.SYMBOL).cast(pl.String),
            pl.lit(bar).alias(BAR),
            BAR_START,
            "trades", "volume", "notional",
            pl.when(pl.col("volume") > 0).then(pl.col(_BUY_VOLUME) / pl.col("volume")).alias("buy_share"),
            "open", "high", "low", "close", "return_log",
            pl.when(pl.col(_N_RET) > 0).then(pl.col(_SQ).sqrt()).alias("realised_vol"),
            pl.col("distinct_buyers").cast(pl.Int64),
            pl.col("rush_orders").fill_null(0),
            spread.alias("spread_bps"),
        ).collect()
        tables.append(table)
    return pl.concat([t.drop(_RANK) for t in tables]).lazy()
