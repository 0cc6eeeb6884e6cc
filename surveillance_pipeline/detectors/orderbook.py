"""Per-order tables that the order-book abuse detectors (spoofing, layering, quote stuffing) share.

Conventions (the same as features.order_intent):
- An order is the first `new` event of an order id within its symbol; its account, side, price and size are
  that event's (a `modify` is not followed). Orders placed before the input's first instant are not seen.
- It rests (could be seen in the book) when it is not a market order and has a price.
- It is cancelled at its first `cancel` event. Its executed quantity is the sum of the trades naming it as
  buyer or seller order, or, when no trade names it, of its `fill` events.
- An account's fill is one side of a trade (the buyer's buy, the seller's sell), its account taken from the
  order it names or else from the trade's buyer / seller id; `fill` events of orders no trade names count too.

Keys are 64-bit hashes (one per symbol x order id, one `book` key per symbol x account x side, one `pair` key per
symbol x account) so that group-bys, joins and `join_asof` compare integers; nothing pairs every order with every
fill. `book_tables` computes the per-order table, the fills and the symbols' typical resting order once per
DetectionInputs: spoofing and layering both read them.

Spoofing and layering are one family and share their cycle (opposite_fill_near_cancel: the fill an account's
cancelled orders tie to) and their test of what the account is over an episode (account_practice: the share of
its executions that the scheme's cycles account for, and the share of time it quoted both sides), so that a
market maker is told apart by what it does all along rather than by one instant.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import timedelta

import polars as pl
from pydantic import Field

from surveillance_pipeline.contract import (
    MARKET_ORDER_TYPE,
    Order,
    OrderEvent,
    Side,
    Trade,
)
from surveillance_pipeline.detectors.base import DetectorSettings


class Life:
    """Columns of the per-order table (besides the contract's order columns)."""

    KEY = "order_key"  # hash of symbol x order id
    BOOK = "book_key"  # hash of symbol x account x side
    RESTING = "resting"
    PLACED = "placed_at"
    CANCELLED = "cancelled_at"
    FILLED = "filled_quantity"
    LAST_FILL = "last_fill_at"


class OwnFill:
    """Columns of an account's fill: one side of a trade."""

    SYMBOL = Order.SYMBOL
    ACCOUNT = Order.USER_ID
    SIDE = Order.SIDE  # the account's side: buy for the buyer
    TIMESTAMP = Order.TIMESTAMP
    QUANTITY = Order.QUANTITY
    TRADE_ID = Trade.TRADE_ID  # null for a `fill` event
    ORDER_ID = Order.ORDER_ID  # the account's order, as given (may be null)
    BOOK = Life.BOOK


class BookPracticeSettings(DetectorSettings):
    """Settings shared by the order-book detectors that tell a market maker's quoting from a one-sided scheme."""

    max_two_sided_share: float = Field(
        0.65, ge=0.0, le=1.0,
        description="the account had orders resting on both sides of the symbol for at most this share of the "
                    "episode and its execution context: a market maker's quotes stand on both sides nearly all the "
                    "time (a full fill empties one side only until the next requote), a one-sided scheme has "
                    "anything on the other side only while a genuine order waits there; about two thirds keeps "
                    "clear of both")

ORDER_KEY = [Life.KEY]
ID_SEED, SYMBOL_SEED = 7, 11
MESSAGE_EVENTS = (OrderEvent.NEW.value, OrderEvent.CANCEL.value, OrderEvent.MODIFY.value)


def order_key(order_id: str = Order.ORDER_ID, symbol: str = Order.SYMBOL) -> pl.Expr:
    """An order as one 64-bit key: venues number orders per market, so the symbol is part of it (null without id)."""
    key = pl.col(order_id).hash(seed=ID_SEED) ^ pl.col(symbol).hash(seed=SYMBOL_SEED)
    return pl.when(pl.col(order_id).is_not_null()).then(key).alias(Life.KEY)


SUM_DECIMALS = 10  # sums of quantities are rounded to this many decimals (crypto sizes have at most 8 or so)


def book_key(symbol: pl.Expr, account: pl.Expr, side: pl.Expr) -> pl.Expr:
    """One side of one symbol's book as one account sees it, as a 64-bit key."""
    return pl.struct(symbol.cast(pl.String), account.cast(pl.String), side.cast(pl.String)).hash(seed=ID_SEED)


def opposite(side: pl.Expr) -> pl.Expr:
    return pl.when(side == Side.BUY.value).then(pl.lit(Side.SELL.value)).otherwise(pl.lit(Side.BUY.value))


def order_lifecycles(orders: pl.DataFrame, trades: pl.DataFrame) -> pl.DataFrame:
    """One row per order: the contract's order columns of its `new` event, plus Life's columns."""
    event = pl.col(Order.EVENT)
    resting = pl.col(Order.PRICE).is_not_null() & (
        pl.col(Order.ORDER_TYPE).is_null() | (pl.col(Order.ORDER_TYPE) != MARKET_ORDER_TYPE))
    keyed = orders.lazy().with_columns(order_key())
    new = keyed.filter(event == OrderEvent.NEW.value).select(
        Order.SYMBOL, Life.KEY, Order.ORDER_ID, Order.USER_ID, Order.SIDE, Order.PRICE, Order.QUANTITY,
        resting.alias(Life.RESTING), pl.col(Order.TIMESTAMP).alias(Life.PLACED),
        pl.col(Life.KEY).is_duplicated().alias("repeated"))
    # the first `new` of an order: ids seen once (the rule) skip the costlier de-duplication
    new = pl.concat([new.filter(~pl.col("repeated")),
                     new.filter(pl.col("repeated")).unique(subset=ORDER_KEY, keep="first", maintain_order=True)]
                    ).drop("repeated")
    cancels = keyed.filter(event == OrderEvent.CANCEL.value).group_by(ORDER_KEY).agg(
        pl.col(Order.TIMESTAMP).min().alias(Life.CANCELLED))
    # sums rounded: a parallel sum adds in any order, and one ulp must not decide "fully executed" differently
    # from one run to the next
    traded = _trade_legs(trades).group_by(ORDER_KEY).agg(
        pl.col(Order.QUANTITY).sum().round(SUM_DECIMALS).alias(Life.FILLED),
        pl.col(Order.TIMESTAMP).max().alias(Life.LAST_FILL))
    fill_events = (
        keyed.filter(event == OrderEvent.FILL.value).join(traded.select(ORDER_KEY), on=ORDER_KEY, how="anti")
        .group_by(ORDER_KEY).agg(
            pl.col(Order.QUANTITY).sum().round(SUM_DECIMALS).alias(Life.FILLED),
            pl.col(Order.TIMESTAMP).max().alias(Life.LAST_FILL))
    )
    return (
        new.join(cancels, on=ORDER_KEY, how="left")
        .join(pl.concat([traded, fill_events]), on=ORDER_KEY, how="left")
        .with_columns(pl.col(Life.FILLED).fill_null(0.0),
                      book_key(pl.col(Order.SYMBOL), pl.col(Order.USER_ID), pl.col(Order.SIDE)).alias(Life.BOOK))
        .collect()
    )


def _trade_legs(trades: pl.DataFrame) -> pl.LazyFrame:
    """Each trade as its buy leg and its sell leg: symbol, order key, order id, account id, side, time, size."""
    trades = trades.lazy()
    legs = []
    for side, order_id, account in ((Side.BUY, Trade.BUYER_ORDER_ID, Trade.BUYER_ID),
                                    (Side.SELL, Trade.SELLER_ORDER_ID, Trade.SELLER_ID)):
        legs.append(trades.select(
            pl.col(Trade.SYMBOL).alias(Order.SYMBOL), order_key(order_id, Trade.SYMBOL),
            pl.col(order_id).alias(Order.ORDER_ID), pl.col(account).alias("trade_account"),
            pl.lit(side.value).alias(Order.SIDE), pl.col(Trade.TIMESTAMP).alias(Order.TIMESTAMP),
            pl.col(Trade.QUANTITY).alias(Order.QUANTITY), pl.col(Trade.TRADE_ID)))
    return pl.concat(legs)


def own_fills(orders: pl.DataFrame, trades: pl.DataFrame, lifecycles: pl.DataFrame) -> pl.DataFrame:
    """Every account's fills (OwnFill columns), sorted by time."""
    owners = lifecycles.lazy().select(*ORDER_KEY, pl.col(Order.USER_ID).alias("order_account"))
    from_trades = (
        _trade_legs(trades).join(owners, on=ORDER_KEY, how="left")
        .select(Order.SYMBOL, pl.coalesce("order_account", "trade_account").alias(OwnFill.ACCOUNT), Order.SIDE,
                Order.TIMESTAMP, Order.QUANTITY, Trade.TRADE_ID, Order.ORDER_ID, Life.KEY)
    )
    traded_keys = _trade_legs(trades).select(ORDER_KEY).unique()
    from_events = (
        orders.lazy().filter(pl.col(Order.EVENT) == OrderEvent.FILL.value)
        .with_columns(order_key())
        .join(traded_keys, on=ORDER_KEY, how="anti")
        .select(Order.SYMBOL, Order.USER_ID, Order.SIDE, Order.TIMESTAMP, Order.QUANTITY,
                pl.lit(None, pl.String).alias(Trade.TRADE_ID), Order.ORDER_ID, Life.KEY)
    )
    return (
        pl.concat([from_trades, from_events])
        .filter(pl.col(OwnFill.ACCOUNT).is_not_null())
        .drop(Life.KEY)
        .with_columns(book_key(pl.col(Order.SYMBOL), pl.col(OwnFill.ACCOUNT), pl.col(Order.SIDE)).alias(OwnFill.BOOK))
        .sort(Order.TIMESTAMP)
        .collect()
    )


BOOK_MEDIAN_SIZE = "book_median_size"


def median_resting_size(lifecycles: pl.DataFrame) -> pl.DataFrame:
    """The symbol's typical resting order (BOOK_MEDIAN_SIZE): the median over accounts of each account's median
    resting order size.

    Each account weighs once: a market maker requoting thousands of times a day would otherwise set the "typical"
    order alone (its quotes are often several times a retail order), and whether an order stands out at its level
    would depend on how often one firm requotes. Per account, then across accounts: two group-bys.
    """
    return (lifecycles.filter(pl.col(Life.RESTING) & (pl.col(Order.QUANTITY) > 0))
            .group_by(Order.SYMBOL, Order.USER_ID).agg(pl.col(Order.QUANTITY).median())
            .group_by(Order.SYMBOL).agg(pl.col(Order.QUANTITY).median().alias(BOOK_MEDIAN_SIZE)))


@dataclass(frozen=True)
class BookTables:
    lifecycles: pl.DataFrame  # order_lifecycles
    fills: pl.DataFrame  # own_fills
    book_medians: pl.DataFrame  # median_resting_size


_TABLES: dict[int, tuple[weakref.ref, int, int, BookTables]] = {}


def book_tables(inputs) -> BookTables:
    """The inputs' per-order table and fills, computed once per DetectionInputs object (and its frames)."""
    key = id(inputs)
    hit = _TABLES.get(key)
    if hit is not None and hit[0]() is inputs and hit[1:3] == (id(inputs.orders), id(inputs.trades)):
        return hit[3]
    lifecycles = order_lifecycles(inputs.orders, inputs.trades)
    tables = BookTables(lifecycles, own_fills(inputs.orders, inputs.trades, lifecycles),
                        median_resting_size(lifecycles))
    if hit is None:
        weakref.finalize(inputs, _TABLES.pop, key, None)
    _TABLES[key] = (weakref.ref(inputs), id(inputs.orders), id(inputs.trades), tables)
    return tables


FILL_AT, FILL_TRADE, FILL_QUANTITY, FILL_ORDER = "fill_at", "fill_trade_id", "fill_quantity", "fill_order_id"


def opposite_fill_near_cancel(candidates: pl.DataFrame, fills: pl.DataFrame, before_ms: int,
                              after_ms: int = 0) -> pl.DataFrame:
    """Candidates (cancelled orders: Life columns) that the cancel ties to a fill of the same account on the other
    side of the same symbol, with FILL_* columns: the last such fill while the order rested and at most
    `before_ms` before its cancel; failing that, the first one at most `after_ms` after the cancel.

    Two `join_asof`s (O(n log n)), not a join of every order with every fill.
    """
    right = fills.select(
        pl.col(OwnFill.BOOK).alias("opposite_book"), pl.col(OwnFill.TIMESTAMP).alias(FILL_AT),
        pl.col(OwnFill.TRADE_ID).alias(FILL_TRADE), pl.col(OwnFill.QUANTITY).alias(FILL_QUANTITY),
        pl.col(OwnFill.ORDER_ID).alias(FILL_ORDER),
    ).sort(FILL_AT, FILL_TRADE, FILL_ORDER, nulls_last=True)  # ties (a sweep's fills at one instant) in a fixed
    left = candidates.with_columns(                            # order: the same fill is chosen on every run
        book_key(pl.col(Order.SYMBOL), pl.col(Order.USER_ID), opposite(pl.col(Order.SIDE))).alias("opposite_book")
    ).sort(Life.CANCELLED, *ORDER_KEY, nulls_last=True)
    before = left.join_asof(right, left_on=Life.CANCELLED, right_on=FILL_AT, by="opposite_book",
                            strategy="backward", check_sortedness=False).filter(
        (pl.col(FILL_AT) >= pl.col(Life.PLACED))
        & (pl.col(Life.CANCELLED) - pl.col(FILL_AT) <= timedelta(milliseconds=before_ms)))
    if after_ms <= 0:
        return before.drop("opposite_book")
    rest = left.join(before.select(ORDER_KEY), on=ORDER_KEY, how="anti")
    after = rest.join_asof(right, left_on=Life.CANCELLED, right_on=FILL_AT, by="opposite_book",
                           strategy="forward", allow_exact_matches=False, check_sortedness=False).filter(
        pl.col(FILL_AT) - pl.col(Life.CANCELLED) <= timedelta(milliseconds=after_ms))
    return pl.concat([before, after.select(before.columns)]).drop("opposite_book")


def resting_quantity_before(lifecycles: pl.DataFrame, probes: pl.DataFrame,
                            *lookups: tuple[str, str, str]) -> pl.DataFrame:
    """Probes with, for each (book, at, alias) of `lookups`, `alias`: the quantity the account had resting in the
    probe's book `book` just before its instant `at`.

    One sweep for all lookups: +size at each resting order's `new`, -size at its cancel (or at its last fill when
    fully executed; partial executions are not subtracted), a running sum per book, looked up with `join_asof`. Only
    the orders live at some probe instant of their book enter it (a forward `join_asof` finds them): a busy
    quoter's thousands of other quotes do not.
    """
    rows = probes.with_row_index("__probe_row")
    asks = pl.concat([
        rows.select("__probe_row", pl.lit(i, pl.UInt32).alias("__lookup"), pl.col(book).alias(Life.BOOK),
                    (pl.col(at) - timedelta(microseconds=1)).dt.epoch("us").alias("__at"))
        for i, (book, at, _) in enumerate(lookups)]).sort("__at")
    ended = pl.coalesce(
        pl.col(Life.CANCELLED),
        pl.when(pl.col(Life.FILLED) >= pl.col(Order.QUANTITY)).then(pl.col(Life.LAST_FILL)))
    resting = (
        lifecycles.lazy().join(asks.lazy().select(Life.BOOK).unique(), on=Life.BOOK, how="semi")
        .filter(pl.col(Life.RESTING) & pl.col(Order.QUANTITY).is_not_null())
        .select(Life.BOOK, pl.col(Life.PLACED).dt.epoch("us").alias("__on"), ended.dt.epoch("us").alias("__off"),
                Order.QUANTITY)
        .sort("__on")
        # the first probe of its book at or after its placement: it must come before the order ended
        .join_asof(asks.lazy().select(Life.BOOK, pl.col("__at").alias("__next")).unique().sort("__next"),
                   left_on="__on",
                   right_on="__next", by=Life.BOOK, strategy="forward", check_sortedness=False)
        .filter(pl.col("__next").is_not_null() & (pl.col("__off").is_null() | (pl.col("__next") < pl.col("__off"))))
    )
    steps = pl.concat([
        resting.select(Life.BOOK, pl.col("__on").alias("__step"), pl.col(Order.QUANTITY).alias("__delta")),
        resting.filter(pl.col("__off").is_not_null()).select(Life.BOOK, pl.col("__off").alias("__step"),
                                                            (-pl.col(Order.QUANTITY)).alias("__delta")),
    ])
    last_of_instant = ((pl.col(Life.BOOK) != pl.col(Life.BOOK).shift(-1))
                       | (pl.col("__step") != pl.col("__step").shift(-1))).fill_null(True)
    # a float running sum keeps rounding residues where orders of different sizes came and went: below a
    # billionth of the book's largest order, nothing is resting
    residue = pl.col("__delta").abs().max().over(Life.BOOK) * 1e-9
    running = (
        steps.sort(Life.BOOK, "__step")
        .with_columns(pl.col("__delta").cum_sum().over(Life.BOOK).alias("__resting"))
        .with_columns(pl.when(pl.col("__resting") > residue).then(pl.col("__resting")).otherwise(0.0))
        .filter(last_of_instant)  # netted per instant
        .select(Life.BOOK, "__step", "__resting").sort("__step").collect()
    )
    found = asks.join_asof(running, left_on="__at", right_on="__step", by=Life.BOOK, strategy="backward",
                           check_sortedness=False).select(
        "__probe_row", "__lookup", pl.col("__resting").fill_null(0.0).clip(lower_bound=0.0))
    for i, (_, _, alias) in enumerate(lookups):
        rows = rows.join(found.filter(pl.col("__lookup") == i).select("__probe_row", pl.col("__resting").alias(alias)),
                         on="__probe_row", how="left")
    return rows.sort("__probe_row").drop("__probe_row")


def executed_orders_between(fills: pl.DataFrame, windows: pl.DataFrame, start: str, end: str,
                            alias: str) -> pl.DataFrame:
    """Windows (rows with the symbol, the account and instants `start` <= `end`) with `alias`: how many distinct
    orders of that account executed in that symbol with their first execution inside [start, end] (a fill without
    an order id counts as an order of its own, by trade id; fill events without either are left out).

    Per account x symbol the first executions are numbered in time; two `join_asof`s read the numbers at the
    window's edges (O(n log n)), nothing pairs windows with fills.
    """
    keys = [Order.SYMBOL, OwnFill.ACCOUNT]
    order = pl.coalesce(pl.format("o:{}", OwnFill.ORDER_ID), pl.format("t:{}", OwnFill.TRADE_ID))
    firsts = (
        fills.lazy().join(windows.lazy().select(keys).unique(), on=keys, how="semi")
        .with_columns(order.alias("__order")).filter(pl.col("__order").is_not_null())
        .group_by(*keys, "__order").agg(pl.col(OwnFill.TIMESTAMP).min().alias("__first"))
        .sort(*keys, "__first")
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(keys).alias("__rank"))
        .select(*keys, "__first", "__rank").sort("__first").collect()
    )
    rows = windows.with_row_index("__row").with_columns(
        (pl.col(start) - timedelta(microseconds=1)).alias("__before"))
    upto_end = rows.sort(end).join_asof(firsts, left_on=end, right_on="__first", by=keys, strategy="backward",
                                        check_sortedness=False).select("__row", pl.col("__rank").alias("__upto"))
    before = rows.sort("__before").join_asof(firsts, left_on="__before", right_on="__first", by=keys,
                                             strategy="backward", check_sortedness=False).select(
        "__row", pl.col("__rank").alias("__below"))
    return (rows.join(upto_end, on="__row").join(before, on="__row").sort("__row")
            .with_columns((pl.col("__upto").fill_null(0) - pl.col("__below").fill_null(0)).alias(alias))
            .drop("__row", "__before", "__upto", "__below"))


def pair_key(symbol: str = Order.SYMBOL, account: str = Order.USER_ID) -> pl.Expr:
    """One account in one symbol as a 64-bit key (group-bys and join_asofs on one integer, not two strings)."""
    return pl.struct(pl.col(symbol).cast(pl.String), pl.col(account).cast(pl.String)).hash(seed=SYMBOL_SEED)


def two_sided_share(lifecycles: pl.DataFrame, windows: pl.DataFrame, start: str, end: str,
                    alias: str) -> pl.DataFrame:
    """Windows (rows with the symbol, the account and instants `start` < `end`) with `alias`: the share of the
    window during which that account had resting orders on both sides of that symbol (a resting order is live from
    its `new` to its cancel, or its last fill when fully executed, or the input's end).

    A sweep per account x symbol over the orders live in its windows' span: +1 / -1 per side at each order's start /
    end, running counts per side, the time both counts were positive accumulated from instant to instant; two
    `join_asof`s read the accumulated time at the window's edges (O(n log n)), nothing pairs windows with orders.
    """
    rows = windows.with_row_index("__row").with_columns(
        pair_key().alias("__pair"), pl.col(start).dt.epoch("us").alias("__s"), pl.col(end).dt.epoch("us").alias("__e"))
    span = rows.group_by("__pair").agg(pl.col("__s").min().alias("__first"), pl.col("__e").max().alias("__last"))
    ended = pl.coalesce(pl.col(Life.CANCELLED),
                        pl.when(pl.col(Life.FILLED) >= pl.col(Order.QUANTITY)).then(pl.col(Life.LAST_FILL)))
    # orders gone before a pair's first window or placed after its last one do not change its counts in them
    resting = (
        lifecycles.lazy().filter(pl.col(Life.RESTING) & (pl.col(Order.QUANTITY) > 0))
        .select(pair_key().alias("__pair"), (pl.col(Order.SIDE) == Side.BUY.value).cast(pl.Int64).alias("__b"),
                pl.col(Life.PLACED).dt.epoch("us").alias("__on"), ended.dt.epoch("us").alias("__off"))
        .join(span.lazy(), on="__pair", how="inner")
        .filter((pl.col("__on") <= pl.col("__last"))
                & (pl.col("__off").is_null() | (pl.col("__off") >= pl.col("__first"))))
    )
    steps = pl.concat([
        resting.select("__pair", pl.col("__on").alias("__t"), pl.col("__b").alias("__buy"),
                       (1 - pl.col("__b")).alias("__sell")),
        resting.filter(pl.col("__off").is_not_null()).select(
            "__pair", pl.col("__off").alias("__t"), (-pl.col("__b")).alias("__buy"),
            (pl.col("__b") - 1).alias("__sell")),
    ])
    both = (pl.col("__buy") > 0) & (pl.col("__sell") > 0)
    both_time = pl.when(both).then(pl.col("__dur")).otherwise(0)
    sweep = (
        steps.group_by("__pair", "__t").agg(pl.col("__buy", "__sell").sum())  # netted per instant
        .sort("__pair", "__t")
        .with_columns(pl.col("__buy", "__sell").cum_sum().over("__pair"))
        .with_columns((pl.col("__t").shift(-1).over("__pair") - pl.col("__t")).fill_null(0).alias("__dur"))
        .with_columns((both_time.cum_sum().over("__pair") - both_time).alias("__before"),  # both-sided time before
                      both.alias("__both"))
        .select("__pair", "__t", "__before", "__both").sort("__t").collect()
    )

    def accumulated(at: str) -> pl.DataFrame:  # both-sided time from the pair's first step to instant `at`
        found = rows.sort(at).join_asof(sweep, left_on=at, right_on="__t", by="__pair", strategy="backward",
                                        check_sortedness=False)
        return found.select("__row", (pl.col("__before") + pl.when(pl.col("__both")).then(pl.col(at) - pl.col("__t"))
                                      .otherwise(0)).fill_null(0).alias(at + "_acc"))

    return (rows.join(accumulated("__s"), on="__row").join(accumulated("__e"), on="__row").sort("__row")
            .with_columns(((pl.col("__e_acc") - pl.col("__s_acc"))
                           / pl.max_horizontal(pl.col("__e") - pl.col("__s"), pl.lit(1))).alias(alias))
            .drop("__row", "__pair", "__s", "__e", "__s_acc", "__e_acc"))


EXECUTED_ORDERS, SHARE_OF_EXECUTIONS, TWO_SIDED_SHARE = "executed_orders", "share_of_executions", "two_sided_share"


def account_practice(tables: BookTables, episodes: pl.DataFrame, context_s: float, genuine: str, fakes_hit: str,
                     min_share_of_executions: float, max_two_sided_share: float) -> pl.DataFrame:
    """The episodes of spoofing or layering (symbol, account, WINDOW_START, WINDOW_END, `genuine`: how many distinct
    genuine orders the cycles' fills executed, `fakes_hit`: how many of its fake orders were partly hit) that are
    the account's practice rather than market making, with the measures, taken from `context_s` before the episode
    to as long after it:
    - EXECUTED_ORDERS: the account's orders executed in the symbol then (executed_orders_between);
    - SHARE_OF_EXECUTIONS: `genuine` / those executed orders other than the hit fakes (1 when the account trades
      there only with its fakes, small for a quoter whose fills are mostly ordinary): >= min_share_of_executions;
    - TWO_SIDED_SHARE: the share of that time it had orders resting on both sides (two_sided_share):
      <= max_two_sided_share. Measured last, on the episodes left: the costlier sweep.
    """
    context = timedelta(seconds=context_s)
    windows = episodes.with_columns((pl.col("window_start") - context).alias("__context_start"),
                                    (pl.col("window_end") + context).alias("__context_end"))
    windows = executed_orders_between(tables.fills, windows, "__context_start", "__context_end", EXECUTED_ORDERS)
    others = pl.max_horizontal(pl.col(EXECUTED_ORDERS) - pl.col(fakes_hit), pl.col(genuine))
    windows = windows.with_columns((pl.col(genuine) / others).alias(SHARE_OF_EXECUTIONS)).filter(
        pl.col(SHARE_OF_EXECUTIONS) >= min_share_of_executions)
    if windows.is_empty():
        return windows.with_columns(pl.lit(None, pl.Float64).alias(TWO_SIDED_SHARE)).drop(
            "__context_start", "__context_end")
    windows = two_sided_share(tables.lifecycles, windows, "__context_start", "__context_end", TWO_SIDED_SHARE)
    return windows.filter(pl.col(TWO_SIDED_SHARE) <= max_two_sided_share).drop("__context_start", "__context_end")


def chain_ids(frame: pl.DataFrame, by: list[str], at: str, gap: timedelta, alias: str) -> pl.DataFrame:
    """Sorts by `by` then `at` and numbers chains: a row starts a new chain when it is the first of its `by`
    group or more than `gap` after the previous row's `at` (rows closer than `gap` belong together)."""
    frame = frame.sort(*by, at)
    same_group = pl.all_horizontal([pl.col(c) == pl.col(c).shift(1) for c in by]) if by else pl.lit(True)
    breaks = ~(same_group & ((pl.col(at) - pl.col(at).shift(1)) <= gap)).fill_null(False)
    return frame.with_columns(breaks.cast(pl.UInt32).cum_sum().alias(alias))


# --- wording of the findings ---------------------------------------------------------------------------------
def clock(instant) -> str:
    """An instant as HH:MM:SS.mmm (the finding's window carries the date)."""
    return instant.strftime("%H:%M:%S.%f")[:-3]


def ms(value: float) -> str:
    """A duration in ms, in the unit an analyst reads best."""
    return f"{value / 1_000:.2f} s" if value >= 1_000 else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def number(value: float) -> str:
    """A quantity or ratio with about three significant digits."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def evidence_list(order_ids, trade_ids=(), limit: int | None = None) -> list[str]:
    """'order:<id>' then 'trade:<id>' strings, each list cut to `limit` ids (None: all)."""
    orders = [f"order:{i}" for i in order_ids if i is not None][:limit]
    trades = [f"trade:{i}" for i in trade_ids if i is not None][:limit]
    return orders + trades


def side_ratio(numerator: str, denominator: str) -> pl.Expr:
    """One side's resting quantity over the other's; null when nothing rested on the other side (unbounded)."""
    return pl.when(pl.col(denominator) > 0).then(pl.col(numerator) / pl.col(denominator))


def imbalance_words(ratio: float | None) -> str:
    return ("with nothing of its own resting on the other side" if ratio is None
            else f"at least {number(ratio)}x what it had resting on the other side")
