"""Storage fixtures: small contract frames. The database fixtures (every storage test on SQLite and on
PostgreSQL, TEST_POSTGRES_URL) are in tests/conftest.py."""
from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from surveillance_pipeline.contract import ORDER_SCHEMA, TRADE_SCHEMA, Order, Trade

DAY = dt.date(2024, 3, 1)


def _make_trades(n: int = 5, day: dt.date = DAY, prefix: str = "t", symbol: str = "BTCUSDT") -> pl.DataFrame:
    """`n` contract trades on `day`, microsecond timestamps, some optional fields null."""
    start = dt.datetime.combine(day, dt.time(0, 0), tzinfo=dt.UTC)
    return pl.DataFrame({
        Trade.TRADE_ID: [f"{prefix}{i}" for i in range(n)],
        Trade.TIMESTAMP: [start + dt.timedelta(hours=i % 24, microseconds=123_457 + i) for i in range(n)],
        Trade.SYMBOL: [symbol] * n,
        Trade.SIDE: ["buy" if i % 2 else "sell" for i in range(n)],
        Trade.PRICE: [65_000.123456789 + i for i in range(n)],
        Trade.QUANTITY: [0.1 + i / 3 for i in range(n)],
        Trade.BUYER_ID: [f"u{i}" if i % 3 else None for i in range(n)],
        Trade.SELLER_ID: [f"u{i + 1}" for i in range(n)],
        Trade.BUYER_ORDER_ID: [f"o{i}" for i in range(n)],
        Trade.SELLER_ORDER_ID: [None if i % 2 else "" for i in range(n)],
        Trade.MARKET_TYPE: ["spot"] * n,
        Trade.QUOTE_QUANTITY: [None if i % 2 else 1e-12 * i for i in range(n)],
        Trade.FEE: [0.0] * n,
    }, schema=TRADE_SCHEMA)


def _make_orders(n: int = 4, day: dt.date = DAY, symbol: str = "BTCUSDT") -> pl.DataFrame:
    """`n` order events (new then cancel of the same order) on `day`."""
    start = dt.datetime.combine(day, dt.time(12, 0), tzinfo=dt.UTC)
    return pl.DataFrame({
        Order.ORDER_ID: [f"o{i // 2}" for i in range(n)],
        Order.TIMESTAMP: [start + dt.timedelta(microseconds=7 * i + 1) for i in range(n)],
        Order.USER_ID: [f"u{i // 2}" for i in range(n)],
        Order.SYMBOL: [symbol] * n,
        Order.SIDE: ["buy"] * n,
        Order.PRICE: [None if i % 2 else 100.5 + i for i in range(n)],
        Order.QUANTITY: [None if i % 2 else 2.0 for i in range(n)],
        Order.EVENT: ["cancel" if i % 2 else "new" for i in range(n)],
        Order.ORDER_TYPE: ["limit"] * n,
        Order.MARKET_TYPE: ["spot"] * n,
    }, schema=ORDER_SCHEMA)


@pytest.fixture
def make_trades():
    """Factory of small contract trade frames: make_trades(n, day, prefix, symbol)."""
    return _make_trades


@pytest.fixture
def make_orders():
    """Factory of small contract order-event frames: make_orders(n, day, symbol)."""
    return _make_orders
