"""Futures features on a tiny hand-made market, each expected value computed by hand."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from surveillance_pipeline.market.futures_features import FEATURES, futures_features
from surveillance_pipeline.market.replay import UTC_MS

DAY = date(2026, 3, 2)
T0 = datetime(2026, 3, 2, tzinfo=UTC)


def _frame(column: str, values: list[float], name: str, start: datetime = T0) -> pl.DataFrame:
    return pl.DataFrame({"market": "BTCUSDT", "market_type": "futures",
                         "created_at": [start + timedelta(minutes=i) for i in range(len(values))],
                         column: values}).with_columns(pl.col("created_at").cast(UTC_MS)).rename({column: name})


def test_features_by_hand():
    funding = pl.DataFrame({"market": "BTCUSDT", "market_type": "futures",
                            "funding_time": [T0 - timedelta(hours=16), T0 - timedelta(hours=8), T0 + timedelta(hours=8),
                                             T0 + timedelta(hours=16)],
                            "theoretical_funding_rate": [0.0001, 0.0003, 0.0005, 0.0007],
                            "actual_funding_rate": [0.0001, 0.0003, 0.0005, 0.0007]}
                           ).with_columns(pl.col("funding_time").cast(UTC_MS))
    liquidations = pl.DataFrame({"market": "BTCUSDT", "market_type": "futures",
                                 "created_at": [T0 + timedelta(minutes=5, seconds=s) for s in range(6)]
                                 + [T0 + timedelta(minutes=9)],
                                 "side": ["sell"] * 6 + ["buy"], "price": [100.0] * 7, "amount": [1.0] * 7}
                                ).with_columns(pl.col("created_at").cast(UTC_MS))
    oi = [100.0] * 20 + [130.0] * 20  # +30 % at minute 20
    tables = {"funding": funding, "liquidations": liquidations,
              "premium": _frame("v", [0.001, -0.003], "premium_index"),
              "basis": _frame("v", [0.0002, 0.0004], "basis_rate"),
              "mark": _frame("v", [101.0, 99.0], "mark_price"), "index": _frame("v", [100.0, 100.0], "index_price"),
              "open_interest": _frame("v", oi, "open_interest_volume")}
    row = futures_features(tables, DAY).row(0, named=True)
    assert set(FEATURES) <= set(row)
    assert row["funding_rate_mean"] == pytest.approx(0.0006) and row["funding_rate_max_abs"] == pytest.approx(0.0007)
    assert row["funding_deviation"] == pytest.approx(0.0006 - 0.0002)          # vs the mean of the days before
    assert row["funding_trend"] == pytest.approx(0.0002)                        # +0.0002 per settlement
    assert row["premium_mean_bps"] == pytest.approx(-10.0) and row["premium_max_abs_bps"] == pytest.approx(30.0)
    assert row["basis_mean_bps"] == pytest.approx(3.0)
    assert row["mark_index_max_dev_bps"] == pytest.approx(100.0)
    assert (row["liquidations"], row["liquidation_volume"], row["liquidation_max_per_minute"]) == (7, 700.0, 6)
    assert row["cascade_risk"] == pytest.approx(6 / 7)                          # 6 sells in one minute
    assert row["oi_change"] == pytest.approx(0.3) and row["oi_max_15min_change"] == pytest.approx(0.3)
    assert row["max_leverage"] is None                                           # no tiers recorded


def test_no_data_that_day_no_row():
    assert futures_features({"premium": _frame("v", [0.001], "premium_index", T0 - timedelta(days=3))},
                            DAY).is_empty()


def test_order_book_and_kline_features_from_depth_and_deals():
    from tests.market.test_orderbook import _book

    bids = [(99.0, 1.0), (98.0, 1.0), (97.0, 1.0), (96.0, 50.0)]
    asks = [(101.0, 1.0), (102.0, 1.0), (103.0, 1.0), (104.0, 1.0)]
    depth = pl.concat([_book(T0, bids, asks), _book(T0 + timedelta(seconds=5), bids[:3] + [(96.0, 1.0)], asks)]
                      ).with_columns(pl.lit("futures").alias("market_type"), pl.col("updated_at").cast(UTC_MS))
    deals = pl.DataFrame({"market": "BTCUSDT", "market_type": "futures",
                          "created_at": [T0, T0 + timedelta(seconds=10), T0 + timedelta(seconds=20),
                                         T0 + timedelta(minutes=1)],
                          "price": [100.0, 104.0, 100.5, 100.0], "amount": [1.0, 1.0, 1.0, 3.0]}
                         ).with_columns(pl.col("created_at").cast(UTC_MS))
    row = futures_features({"depth": depth, "deals": deals}, DAY).row(0, named=True)
    assert row["walls_vanished"] == 1
    assert row["imbalance_max_abs"] == pytest.approx((53 - 4) / 57)
    assert row["max_wick_share"] == pytest.approx((104.0 - 100.5) / 4.0)   # the first minute spiked and gave back
    assert row["volume_spike_ratio"] == pytest.approx(3.0 / 3.0)            # two bars of 3 lots: median 3
