"""Per-order tables that the order-book abuse detectors (spoofing, layering, quote stuffing) share.

Conventions (the same as features.order_intent):
- An order is the first `new` event of an order id within its symbol; its account, side, price and size are
  that event's (a `modify` is not followed). Orders placed before the input's first instant are not seen.
- It rests (could be seen in the book) when it is not a market order and has a price.
- It is cancelled at its first `cancel` event. Its executed quantity is the sum of the trades naming it as
  buyer or seller order, or, when no trade names it, of its `fill` events.
- An account's fill is one side of a trade (the buyer's buy, the seller's sell), its account taken from the
  order it names or else from the trade's buyer / seller id; `fill` events of orders no trade names count too.

Keys are 64-bit hashes (one per symbol x order id, one `book` key per symbol x account x side) so that
group-bys, joins and `join_asof` compare integers; nothing pairs every order with every fill. `book_tables`
computes the per-order table and the fills once per DetectionInputs: spoofing and layering both read them.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from surveillance_pipeline.contract import (
    MARKET_ORDER_TYPE,
    Order,
    OrderEvent,
    Side,
    Trade,
)


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


ORDER_KEY = [Life.KEY]
ID_SEED, SYMBOL_SEED = 7, 11
MESSAGE_EVENTS = (OrderEvent.NEW.value, OrderEvent.CANCEL.value, OrderEvent.MODIFY.value)


def order_key(order_id: str = Order.ORDER_ID, symbol: str = Order.SYMBOL) -> pl.Expr:
    """An order as one 64-bit key: venues number orders per market, so the symbol is part of it (null without id)."""
    key = pl.col(order_id).hash(seed=ID_SEED) ^ pl.col(symbol).hash(seed=SYMBOL_SEED)
    return pl.when(pl.col(order_id).is_not_null()).then(key).alias(Life.KEY)


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
    traded = _trade_legs(trades).group_by(ORDER_KEY).agg(
        pl.col(Order.QUANTITY).sum().alias(Life.FILLED),
        pl.col(Order.TIMESTAMP).max().alias(Life.LAST_FILL))
    fill_events = (
        keyed.filter(event == OrderEvent.FILL.value).join(traded.select(ORDER_KEY), on=ORDER_KEY, how="anti")
        .group_by(ORDER_KEY).agg(
            pl.col(Order.QUANTITY).sum().alias(Life.FILLED),
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
    """The symbol's typical resting order: median size of all accounts' resting orders (BOOK_MEDIAN_SIZE)."""
    return lifecycles.filter(pl.col(Life.RESTING) & (pl.col(Order.QUANTITY) > 0)).group_by(Order.SYMBOL).agg(
        pl.col(Order.QUANTITY).median().alias(BOOK_MEDIAN_SIZE))


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
    ).sort(FILL_AT)
    left = candidates.with_columns(
        book_key(pl.col(Order.SYMBOL), pl.col(Order.USER_ID), opposite(pl.col(Order.SIDE))).alias("opposite_book")
    ).sort(Life.CANCELLED)
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


def resting_quantity_before(lifecycles: pl.DataFrame, probes: pl.DataFrame, book: str, at: str,
                            alias: str) -> pl.DataFrame:
    """Probes with `alias`: the quantity the account had resting in book `book` just before instant `at`.

    A sweep: +size at each resting order's `new`, -size at its cancel (or at its last fill when fully executed;
    partial executions are not subtracted), a running sum per book, looked up with `join_asof`.
    """
    probed = probes.select(pl.col(book).alias(Life.BOOK)).unique().lazy()
    resting = lifecycles.lazy().join(probed, on=Life.BOOK, how="semi").filter(
        pl.col(Life.RESTING) & pl.col(Order.QUANTITY).is_not_null())
    ended = pl.coalesce(
        pl.col(Life.CANCELLED),
        pl.when(pl.col(Life.FILLED) >= pl.col(Order.QUANTITY)).then(pl.col(Life.LAST_FILL)))
    steps = pl.concat([
        resting.select(Life.BOOK, pl.col(Life.PLACED).alias("step_at"), pl.col(Order.QUANTITY).alias("delta")),
        resting.filter(ended.is_not_null()).select(Life.BOOK, ended.alias("step_at"),
                                                   (-pl.col(Order.QUANTITY)).alias("delta")),
    ])
    running = (
        steps.sort(Life.BOOK, "step_at")
        .with_columns(pl.col("delta").cum_sum().over(Life.BOOK).alias(alias))
        .group_by(Life.BOOK, "step_at").agg(pl.col(alias).last())  # netted per instant
        .sort("step_at")
        .collect()
    )
    before = (pl.col(at) - timedelta(microseconds=1)).alias("__probe_at")
    looked_up = (
        probes.with_row_index("__probe_row").with_columns(before).sort("__probe_at")
        .join_asof(running, left_on="__probe_at", right_on="step_at", by_left=book, by_right=Life.BOOK,
                   strategy="backward", check_sortedness=False)
    )
    return (looked_up.sort("__probe_row")
            .with_columns(pl.col(alias).fill_null(0.0).clip(lower_bound=0.0))
            .drop("__probe_row", "__probe_at", "step_at", Life.BOOK + "_right", strict=False))


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
