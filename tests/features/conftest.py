"""Tiny hand-made frames for feature tests: every expected number can be worked out by hand."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest

from surveillance_pipeline.config import FeatureSettings
from surveillance_pipeline.contract import ORDER_SCHEMA, TRADE_SCHEMA
from surveillance_pipeline.features.base import FeatureInputs

DAY = date(2026, 3, 2)
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    """T0 (10:00 UTC on DAY) plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def trades(rows: list[tuple]) -> pl.DataFrame:
    """Trades from (seconds after T0, symbol, taker side, price, quantity, buyer, seller)."""
    return pl.DataFrame(
        [{"trade_id": f"t{i}", "timestamp": at(s), "symbol": sym, "side": side, "price": p, "quantity": q,
          "buyer_id": b, "seller_id": se, "buyer_order_id": f"bo{i}", "seller_order_id": f"so{i}",
          "market_type": "spot", "quote_quantity": p * q, "fee": 0.0}
         for i, (s, sym, side, p, q, b, se) in enumerate(rows)],
        schema=TRADE_SCHEMA,
    )


def orders(rows: list[tuple]) -> pl.DataFrame:
    """Order events from (seconds after T0, order id, user, symbol, side, price, quantity, event)."""
    return pl.DataFrame(
        [{"order_id": o, "timestamp": at(s), "user_id": u, "symbol": sym, "side": side, "price": p,
          "quantity": q, "event": e, "order_type": "limit", "market_type": "spot"}
         for s, o, u, sym, side, p, q, e in rows],
        schema=ORDER_SCHEMA,
    )


def inputs(day_trades: pl.DataFrame, day_orders: pl.DataFrame | None = None,
           history: pl.DataFrame | None = None, **settings) -> FeatureInputs:
    return FeatureInputs(
        day=DAY, trades=day_trades.lazy(),
        orders=(day_orders if day_orders is not None else pl.DataFrame(schema=ORDER_SCHEMA)).lazy(),
        history=(history if history is not None else pl.DataFrame(schema=TRADE_SCHEMA)).lazy(),
        settings=FeatureSettings(**settings),
    )


def by_account(frame: pl.LazyFrame | pl.DataFrame) -> dict[str, dict]:
    frame = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    return {row["account_id"]: row for row in frame.iter_rows(named=True)}


@pytest.fixture
def approx():
    return lambda value: pytest.approx(value, rel=1e-9, abs=1e-12)
