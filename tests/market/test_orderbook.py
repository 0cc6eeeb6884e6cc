"""Order-book imbalance, vanishing walls and k-line shapes on hand-made snapshots."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from surveillance_pipeline.market.orderbook import book_imbalance, kline_shapes, vanished_walls

T0 = datetime(2026, 3, 2, 10, tzinfo=UTC)


def _book(at: datetime, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> pl.DataFrame:
    rows = [{"market": "BTCUSDT", "updated_at": at, "side": side, "level": i, "price": p, "amount": a}
            for side, levels in (("bid", bids), ("ask", asks)) for i, (p, a) in enumerate(levels)]
    return pl.DataFrame(rows)


def test_imbalance_and_a_wall_pulled_before_the_price_came():
    bids = [(99.0, 1.0), (98.0, 1.0), (97.0, 1.0), (96.0, 50.0)]  # a 50-lot wall at 96 (median 1)
    asks = [(101.0, 1.0), (102.0, 1.0), (103.0, 1.0), (104.0, 1.0)]
    first = _book(T0, bids, asks)
    pulled = _book(T0 + timedelta(seconds=5), bids[:3] + [(96.0, 1.0)], asks)  # best bid still 99: not reached
    imbalance = book_imbalance(first)
    assert imbalance["imbalance"][0] == pytest.approx((53 - 4) / (53 + 4))
    gone = vanished_walls(pl.concat([first, pulled]))
    assert gone.select("side", "price", "amount").rows() == [("bid", 96.0, 50.0)]


def test_a_wall_that_traded_away_did_not_vanish():
    bids = [(99.0, 1.0), (98.0, 1.0), (97.0, 1.0), (96.0, 50.0)]
    asks = [(101.0, 1.0), (102.0, 1.0), (103.0, 1.0), (104.0, 1.0)]
    crashed = _book(T0 + timedelta(seconds=5), [(95.0, 1.0), (94.0, 1.0), (93.0, 1.0)], [(95.5, 1.0), (96.5, 1.0)])
    assert vanished_walls(pl.concat([_book(T0, bids, asks), crashed])).is_empty()  # the price reached 96


def test_kline_shapes():
    bars = pl.DataFrame({"market": ["BTCUSDT"] * 3, "open": [100.0, 100.0, 100.0], "close": [100.5, 100.2, 99.8],
                         "high": [101.0, 105.0, 100.1], "low": [99.5, 99.9, 99.7], "volume": [10.0, 60.0, 10.0]})
    row = kline_shapes(bars).row(0, named=True)
    assert row["max_wick_share"] == pytest.approx((105.0 - 100.2) / (105.0 - 99.9))
    assert row["volume_spike_ratio"] == pytest.approx(6.0)
