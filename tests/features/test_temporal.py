import polars as pl
import pytest

from surveillance_pipeline.features.temporal import FEATURES, temporal_features
from tests.features.conftest import by_account, inputs, trades

H = 3_600
DAY_S = 86_400


def _calendar():
    # DAY is Monday 2026-03-02 and T0 is 10:00 UTC; counterparties differ so only a is asserted on.
    day_trades = trades([
        (0, "BTCUSDT", "buy", 100.0, 1.0, "a", "b"),       # Mon 10:00
        (1, "BTCUSDT", "buy", 100.0, 1.0, "a", "c"),       # Mon 10:00
        (H, "ETHUSDT", "sell", 100.0, 1.0, "d", "a"),      # Mon 11:00
    ])
    history = trades([
        (H - DAY_S, "BTCUSDT", "buy", 100.0, 1.0, "a", "e"),        # Sun Mar 1 11:00
        (5 * H - 10 * DAY_S, "BTCUSDT", "buy", 100.0, 1.0, "a", "e"),  # Fri Feb 20 15:00: outside 7 days
    ])
    return inputs(day_trades, history=history)


def test_columns_are_the_catalogue():
    frame = temporal_features(_calendar()).collect()
    assert frame.columns == ["account_id"] + [f.name for f in FEATURES]
    assert sorted(frame["account_id"]) == ["a", "b", "c", "d"]  # e has only history: no row


def test_anonymous_tape_gives_no_rows():
    tape = trades([(0, "BTCUSDT", "buy", 100.0, 1.0, None, None), (1, "BTCUSDT", "sell", 101.0, 1.0, None, None)])
    frame = temporal_features(inputs(tape, history=tape)).collect()
    assert frame.height == 0
    assert frame.columns == ["account_id"] + [f.name for f in FEATURES]


def test_hour_entropy():
    rows = by_account(temporal_features(_calendar()))
    # a: hour 10 x 2 (day), hour 11 x 1 (day) + 1 (Mar 1) -> shares 1/2, 1/2 -> 1 bit (Feb 20 15:00 ignored)
    assert rows["a"]["hour_entropy"] == pytest.approx(1.0)
    assert rows["b"]["hour_entropy"] == 0.0  # one fill, one hour


def test_weekday_entropy():
    rows = by_account(temporal_features(_calendar()))
    # a: Monday x 3, Sunday x 1 -> -(3/4 log2 3/4 + 1/4 log2 1/4) = 0.311278 + 0.5 = 0.811278
    assert rows["a"]["weekday_entropy"] == pytest.approx(0.8112781, rel=1e-6)


def test_session_concentration():
    day_trades = trades([
        (0, "BTCUSDT", "buy", 100.0, 1.0, "a", "b"),        # 10:00 europe [8, 16)
        (-3 * H, "BTCUSDT", "buy", 100.0, 1.0, "a", "c"),   # 07:00 asia [0, 8)
        (6 * H, "BTCUSDT", "buy", 100.0, 1.0, "a", "d"),    # 16:00 americas [16, 24): not europe
        (7 * H, "BTCUSDT", "buy", 100.0, 1.0, "a", "e"),    # 17:00 americas
        (8 * H, "BTCUSDT", "buy", 100.0, 1.0, "a", "f"),    # 18:00 americas
    ])
    rows = by_account(temporal_features(inputs(day_trades)))
    assert rows["a"]["session_concentration"] == pytest.approx(0.6)  # americas 3 of 5 fills

    night = trades([
        (-9 * H, "BTCUSDT", "buy", 100.0, 1.0, "a", "b"),   # 01:00
        (13 * H, "BTCUSDT", "buy", 100.0, 1.0, "a", "c"),   # 23:00
        (0, "BTCUSDT", "buy", 100.0, 1.0, "a", "d"),        # 10:00
    ])
    wrapped = by_account(temporal_features(inputs(night, session_hours={"night": (22, 2), "day": (2, 22)})))
    assert wrapped["a"]["session_concentration"] == pytest.approx(2 / 3)  # night [22, 2) holds 01:00 and 23:00
    assert by_account(temporal_features(inputs(night, session_hours={})))["a"]["session_concentration"] is None


def _gaps():
    return inputs(trades([
        (0, "BTCUSDT", "buy", 100.0, 1.0, "a", "b"),
        (2, "ETHUSDT", "sell", 100.0, 1.0, "c", "a"),   # gap 2 (across symbols)
        (6, "BTCUSDT", "buy", 100.0, 1.0, "a", "d"),    # gap 4
        (12, "ETHUSDT", "buy", 100.0, 1.0, "a", "e"),   # gap 6
        (100, "BTCUSDT", "buy", 100.0, 1.0, "f", "g"),
        (130, "BTCUSDT", "buy", 100.0, 1.0, "f", "h"),  # f: one gap of 30
    ]))


def test_inter_trade_mean_s():
    rows = by_account(temporal_features(_gaps()))
    assert rows["a"]["inter_trade_mean_s"] == pytest.approx(4.0)  # (2 + 4 + 6) / 3
    assert rows["f"]["inter_trade_mean_s"] == pytest.approx(30.0)  # one gap
    assert rows["b"]["inter_trade_mean_s"] is None  # one fill: no gap


def test_inter_trade_cv():
    rows = by_account(temporal_features(_gaps()))
    # gaps 2, 4, 6: mean 4, sample std sqrt((4 + 0 + 4) / 2) = 2 -> CV 2 / 4
    assert rows["a"]["inter_trade_cv"] == pytest.approx(0.5)
    assert rows["f"]["inter_trade_cv"] is None  # a single gap


def test_burstiness():
    rows = by_account(temporal_features(_gaps()))
    assert rows["a"]["burstiness"] == pytest.approx(-1 / 3)  # (2 - 4) / (2 + 4)
    assert rows["f"]["burstiness"] is None  # a single gap


def test_clustered_share():
    day_trades = trades([
        (0, "BTCUSDT", "buy", 100.0, 1.0, "a", "b"),
        (0.5, "BTCUSDT", "buy", 100.0, 1.0, "a", "c"),   # gap 0.5: clustered
        (1.5, "ETHUSDT", "sell", 100.0, 1.0, "d", "a"),  # gap 1.0: clustered (cluster_seconds 1, inclusive)
        (5, "BTCUSDT", "buy", 100.0, 1.0, "a", "e"),     # gap 3.5
        (20, "BTCUSDT", "buy", 100.0, 1.0, "a", "a"),    # self-trade: two fills of one trade, one execution
    ])
    rows = by_account(temporal_features(inputs(day_trades)))
    # executions 0, 0.5, 1.5, 5, 20 -> 2 clustered of 5 (counting the self-trade's two fills would give 3 of 6)
    assert rows["a"]["clustered_share"] == pytest.approx(0.4)
    assert rows["a"]["inter_trade_mean_s"] == pytest.approx(5.0)  # gaps 0.5, 1, 3.5, 15 -> 20 / 4
    assert rows["b"]["clustered_share"] == 0.0  # one fill: nothing before it


def test_clustered_share_merges_one_order_matched_at_one_instant():
    sweep = trades([
        (100, "BTCUSDT", "buy", 100.0, 1.0, "x", "y"),
        (100, "BTCUSDT", "buy", 100.1, 1.0, "x", "z"),   # same taker order as the fill above: one execution
        (100.5, "BTCUSDT", "buy", 100.2, 1.0, "x", "y"),  # a new order, 0.5 s later: clustered
    ]).with_columns(
        pl.when(pl.col("trade_id").is_in(["t0", "t1"])).then(pl.lit("X1"))
        .otherwise(pl.col("buyer_order_id")).alias("buyer_order_id"))
    rows = by_account(temporal_features(inputs(sweep)))
    assert rows["x"]["clustered_share"] == pytest.approx(0.5)  # executions 100, 100.5 -> 1 of 2
    assert rows["y"]["clustered_share"] == pytest.approx(0.5)  # its two resting orders filled 0.5 s apart


def test_clustered_share_keeps_different_orders_at_one_instant_apart():
    two_orders = trades([
        (0, "BTCUSDT", "buy", 100.0, 1.0, "q", "r"),  # q's order bo0
        (0, "BTCUSDT", "buy", 100.0, 1.0, "q", "s"),  # q's order bo1, same instant: a second execution
    ])
    rows = by_account(temporal_features(inputs(two_orders)))
    assert rows["q"]["clustered_share"] == pytest.approx(0.5)  # executions 0, 0 -> gap 0 -> 1 of 2
    assert rows["q"]["inter_trade_mean_s"] == 0.0
