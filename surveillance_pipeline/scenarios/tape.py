"""The tape: collects trades and order events with integer codes, then assembles the contract's frames.

Internally accounts and symbols are indices and order ids are integers in allocation order; at build
time order ids are renumbered in the order the venue would have accepted them (by `new` time), so an
id never reveals which generator produced the order.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from surveillance_pipeline.contract import (
    MARKET_ORDER_TYPE,
    ORDER_SCHEMA,
    TRADE_SCHEMA,
    MarketType,
    Order,
    OrderEvent,
    Side,
    Trade,
)
from surveillance_pipeline.scenarios.spec import LIMIT_ORDER_TYPE

TAKER_FEE_RATE = 0.001

TRADE_FIELDS = {
    "ts": pl.Int64, "sym": pl.Int32, "taker_buy": pl.Boolean, "price": pl.Float64, "qty": pl.Float64,
    "buyer": pl.Int32, "seller": pl.Int32, "buyer_oid": pl.Int64, "seller_oid": pl.Int64,
}
# A cancel carries the order's price and the quantity it took off the book (the unfilled remainder).
ORDER_FIELDS = {
    "oid": pl.Int64, "ts": pl.Int64, "user": pl.Int32, "sym": pl.Int32, "buy": pl.Boolean,
    "price": pl.Float64, "qty": pl.Float64, "cancel": pl.Boolean, "market": pl.Boolean,
}


class Tape:
    """Accumulates vectorised chunks (background) and single rows (episodes)."""

    def __init__(self) -> None:
        self._trade_chunks: list[dict[str, np.ndarray]] = []
        self._order_chunks: list[dict[str, np.ndarray]] = []
        self._trade_rows: list[tuple] = []
        self._order_rows: list[tuple] = []
        self._resting: dict[int, tuple] = {}  # oid -> (user, sym, buy, price, qty) of row-level orders
        self._next_oid = 0

    def reserve_order_ids(self, n: int) -> np.ndarray:
        ids = np.arange(self._next_oid, self._next_oid + n, dtype=np.int64)
        self._next_oid += n
        return ids

    def add_trades(self, **columns: np.ndarray) -> None:
        self._trade_chunks.append(_broadcast(columns, TRADE_FIELDS))

    def add_orders(self, **columns: np.ndarray) -> None:
        self._order_chunks.append(_broadcast(columns, ORDER_FIELDS))

    # Row-level helpers for episodes (a handful of events each).
    def place(self, ts: int, user: int, sym: int, buy: bool, price: float, qty: float, market: bool = False) -> int:
        oid = int(self.reserve_order_ids(1)[0])
        self._order_rows.append((oid, ts, user, sym, buy, np.nan if market else price, qty, False, market))
        self._resting[oid] = (user, sym, buy, price, qty)
        return oid

    def cancel(self, oid: int, ts: int) -> None:
        user, sym, buy, price, qty = self._resting[oid]
        self._order_rows.append((oid, ts, user, sym, buy, price, qty, True, False))

    def trade(self, ts: int, sym: int, taker_buy: bool, price: float, qty: float,
              buyer: int, seller: int, buyer_oid: int, seller_oid: int) -> None:
        self._trade_rows.append((ts, sym, taker_buy, price, qty, buyer, seller, buyer_oid, seller_oid))

    def build(self, symbols: list[str], account_names: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
        trades = _collect(self._trade_chunks, self._trade_rows, TRADE_FIELDS)
        orders = _collect(self._order_chunks, self._order_rows, ORDER_FIELDS)
        rank = self._acceptance_rank(orders)
        digits = max(9, len(str(len(rank))))
        return _trades_frame(trades, symbols, account_names, rank, digits), \
            _orders_frame(orders, symbols, account_names, rank, digits)

    def _acceptance_rank(self, orders: pl.DataFrame) -> np.ndarray:
        """1-based rank of each internal oid by the time of its new event: the external order number."""
        new = orders.filter(~pl.col("cancel")).select("oid", "ts").sort(["ts", "oid"])
        oids = new["oid"].to_numpy()
        # bincount, not np.unique: the latter hashes and is slow on millions of ids.
        if len(oids) != self._next_oid or np.bincount(oids, minlength=self._next_oid).max(initial=1) != 1:
            raise RuntimeError("scenario tape: every order id needs exactly one new event")
        rank = np.empty(self._next_oid, dtype=np.int64)
        rank[oids] = np.arange(1, len(oids) + 1)
        return rank


def _broadcast(columns: dict[str, np.ndarray], fields: dict[str, pl.DataType]) -> dict[str, np.ndarray]:
    missing = set(fields) - set(columns)
    if missing:
        raise ValueError(f"scenario tape chunk is missing {sorted(missing)}")
    n = max(np.size(v) for v in columns.values())
    return {name: np.broadcast_to(np.asarray(columns[name]), (n,)) for name in fields}


def _collect(chunks: list[dict], rows: list[tuple], fields: dict[str, pl.DataType]) -> pl.DataFrame:
    frames = [pl.DataFrame({k: np.ascontiguousarray(v) for k, v in chunk.items()}, schema=fields) for chunk in chunks]
    if rows:
        frames.append(pl.DataFrame(rows, schema=fields, orient="row"))
    if not frames:
        return pl.DataFrame(schema=fields)
    return pl.concat(frames, how="vertical").with_row_index("seq")


def _side(flag: str) -> pl.Expr:
    return pl.when(pl.col(flag)).then(pl.lit(Side.BUY.value)).otherwise(pl.lit(Side.SELL.value))


def _timestamp(col: str) -> pl.Expr:
    return pl.col(col).cast(ORDER_SCHEMA[Order.TIMESTAMP])


def _order_id(rank_col: str, digits: int) -> pl.Expr:
    """o000000042: fixed width, so ids sort like their numbers."""
    return pl.format("o{}", (pl.col(rank_col) + 10**digits).cast(pl.String).str.slice(1))


def _trades_frame(trades: pl.DataFrame, symbols: list[str], names: list[str], rank: np.ndarray,
                  digits: int) -> pl.DataFrame:
    accounts, symbol_names = pl.Series(names), pl.Series(symbols)
    trades = trades.with_columns(
        pl.Series(rank[trades["buyer_oid"].to_numpy()]).alias("buyer_rank"),
        pl.Series(rank[trades["seller_oid"].to_numpy()]).alias("seller_rank"),
    )
    # Venues number trades per market in time order.
    trades = trades.sort(["sym", "ts", "seq"]).with_columns(pl.int_range(1, pl.len() + 1).over("sym").alias("number"))
    trades = trades.sort(["ts", "sym", "seq"])
    trades = trades.with_columns(
        symbol_names.gather(trades["sym"]).alias(Trade.SYMBOL),
        accounts.gather(trades["buyer"]).alias(Trade.BUYER_ID),
        accounts.gather(trades["seller"]).alias(Trade.SELLER_ID),
    )
    quote = (pl.col("price") * pl.col("qty")).round(8)
    frame = trades.with_columns(
        pl.format("{}-{}", pl.col(Trade.SYMBOL), pl.col("number")).alias(Trade.TRADE_ID),
        _timestamp("ts").alias(Trade.TIMESTAMP),
        _side("taker_buy").alias(Trade.SIDE),
        pl.col("price").alias(Trade.PRICE),
        pl.col("qty").alias(Trade.QUANTITY),
        _order_id("buyer_rank", digits).alias(Trade.BUYER_ORDER_ID),
        _order_id("seller_rank", digits).alias(Trade.SELLER_ORDER_ID),
        pl.lit(MarketType.SPOT.value).alias(Trade.MARKET_TYPE),
        quote.alias(Trade.QUOTE_QUANTITY),
        (quote * TAKER_FEE_RATE).round(8).alias(Trade.FEE),
    )
    return frame.select([pl.col(name).cast(dtype) for name, dtype in TRADE_SCHEMA.items()])


def _orders_frame(orders: pl.DataFrame, symbols: list[str], names: list[str], rank: np.ndarray,
                  digits: int) -> pl.DataFrame:
    accounts, symbol_names = pl.Series(names), pl.Series(symbols)
    orders = orders.with_columns(pl.Series(rank[orders["oid"].to_numpy()]).alias("rank"))
    orders = orders.sort(["ts", "rank", "cancel"])
    orders = orders.with_columns(
        accounts.gather(orders["user"]).alias(Order.USER_ID),
        symbol_names.gather(orders["sym"]).alias(Order.SYMBOL),
    )
    frame = orders.with_columns(
        _order_id("rank", digits).alias(Order.ORDER_ID),
        _timestamp("ts").alias(Order.TIMESTAMP),
        _side("buy").alias(Order.SIDE),
        pl.col("price").fill_nan(None).alias(Order.PRICE),
        pl.col("qty").alias(Order.QUANTITY),
        pl.when(pl.col("cancel")).then(pl.lit(OrderEvent.CANCEL.value))
        .otherwise(pl.lit(OrderEvent.NEW.value)).alias(Order.EVENT),
        pl.when(pl.col("market")).then(pl.lit(MARKET_ORDER_TYPE))
        .otherwise(pl.lit(LIMIT_ORDER_TYPE)).alias(Order.ORDER_TYPE),
        pl.lit(MarketType.SPOT.value).alias(Order.MARKET_TYPE),
    )
    return frame.select([pl.col(name).cast(dtype) for name, dtype in ORDER_SCHEMA.items()])
