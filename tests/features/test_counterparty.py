import polars as pl
import pytest
from polars.testing import assert_frame_equal

from surveillance_pipeline.features.counterparty import FEATURES, counterparty_features
from tests.features.conftest import by_account, inputs, orders, trades


def _day(**settings):
    day_trades = trades([
        (0, "BTCUSDT", "buy", 100.0, 1.0, "a", "b"),      # a buys 1 BTC from b at 100
        (10, "BTCUSDT", "sell", 100.05, 1.0, "b", "a"),   # a sells it back to b at 100.05 (~5 bps away)
        (20, "BTCUSDT", "buy", 100.0, 2.0, "a", "a"),     # a self-trade: a buys and sells 2 BTC at 100
        (30, "ETHUSDT", "buy", 10.0, 3.0, "a", "c"),      # a buys 3 ETH from c at 10
        (40, "ETHUSDT", "sell", 11.0, 1.0, "c", "a"),     # a sells 1 ETH to c at 11 (~952 bps away)
        (50, "BTCUSDT", "buy", 100.0, 0.5, "d", None),    # d buys from an unknown seller
    ])
    day_orders = orders([(0, "e1", "e", "BTCUSDT", "buy", 90.0, 1.0, "new")])  # e: orders, no fills
    return inputs(day_trades, day_orders, **settings)


# a's fills: BTC buy 100 (b), sell 100.05 (b), buy 200 (a), sell 200 (a); ETH buy 30 (c), sell 11 (c)
A_GROSS = 100 + 100.05 + 200 + 200 + 30 + 11  # 641.05


def test_columns_are_the_catalogue():
    frame = counterparty_features(_day()).collect()
    assert frame.columns == ["account_id"] + [f.name for f in FEATURES]
    assert sorted(frame["account_id"]) == ["a", "b", "c", "d", "e"]


def test_anonymous_tape_gives_no_rows():
    tape = trades([(0, "BTCUSDT", "buy", 100.0, 1.0, None, None), (1, "BTCUSDT", "sell", 99.0, 2.0, None, None)])
    frame = counterparty_features(inputs(tape)).collect()
    assert frame.height == 0
    assert frame.columns == ["account_id"] + [f.name for f in FEATURES]


def test_self_trade_count():
    rows = by_account(counterparty_features(_day()))
    assert rows["a"]["self_trade_count"] == 1  # one trade (two fills) with buyer = seller = a
    assert rows["b"]["self_trade_count"] == 0
    assert rows["d"]["self_trade_count"] == 0
    assert rows["e"]["self_trade_count"] is None  # no fills


def test_top_counterparty_share(approx):
    rows = by_account(counterparty_features(_day()))
    # a: with itself 200 + 200 = 400, with b 100 + 100.05 = 200.05, with c 30 + 11 = 41
    assert rows["a"]["top_counterparty_share"] == approx(400 / 641.05)
    assert rows["b"]["top_counterparty_share"] == approx(1.0)  # all with a
    assert rows["d"]["top_counterparty_share"] == 0.0  # its one counterparty is unknown: 0 / 50
    assert rows["e"]["top_counterparty_share"] is None


def test_round_trip_counterparty_share(approx):
    rows = by_account(counterparty_features(_day()))
    # a x b x BTC: bought 1 at 100, sold 1 at 100.05: |100 - 100.05| / 100.025 = 5.0 bps <= 10 -> matched 1,
    #   both legs 2 x 1 x 100.025 = 200.05
    # a x a x BTC (self-trade): matched 2 at 100 -> 2 x 2 x 100 = 400
    # a x c x ETH: |10 - 11| / 10.5 = 952 bps > 10 -> not a round trip
    assert rows["a"]["round_trip_counterparty_share"] == approx((200.05 + 400) / 641.05)
    assert rows["b"]["round_trip_counterparty_share"] == approx(1.0)  # 200.05 / 200.05
    assert rows["c"]["round_trip_counterparty_share"] == 0.0  # 0 / 41
    assert rows["d"]["round_trip_counterparty_share"] == 0.0
    assert rows["e"]["round_trip_counterparty_share"] is None


@pytest.mark.parametrize(("tolerance_bps", "expected"), [
    (4.0, 400 / 641.05),                # the a x b round trip (5.0 bps) is now too far apart
    (1_000.0, (200.05 + 400 + 2 * 1 * 10.5) / 641.05),  # the ETH one (952 bps) counts: 2 x min(3, 1) x 10.5
])
def test_round_trip_tolerance(tolerance_bps, expected, approx):
    rows = by_account(counterparty_features(_day(round_trip_tolerance_bps=tolerance_bps)))
    assert rows["a"]["round_trip_counterparty_share"] == approx(expected)


def test_net_position_ratio(approx):
    rows = by_account(counterparty_features(_day()))
    # a: BTC |+1 - 1 + 2 - 2| / 6 = 0 on notional 600.05; ETH |+3 - 1| / 4 = 0.5 on notional 41
    assert rows["a"]["net_position_ratio"] == approx((0 * 600.05 + 0.5 * 41) / 641.05)
    assert rows["b"]["net_position_ratio"] == 0.0  # sold 1, bought 1
    assert rows["c"]["net_position_ratio"] == approx(0.5)  # |-3 + 1| / 4
    assert rows["d"]["net_position_ratio"] == 1.0  # only bought
    assert rows["e"]["net_position_ratio"] is None


def test_accounts_with_only_orders_have_null_counterparty_features():
    row = by_account(counterparty_features(_day()))["e"]
    assert all(row[f.name] is None for f in FEATURES)
    assert counterparty_features(_day()).collect().schema["self_trade_count"] == pl.Int64


def test_top_counterparty_sums_the_symbols(approx):
    day = inputs(trades([
        (0, "BTCUSDT", "buy", 100.0, 1.0, "a", "b"),   # a with b: 100 in BTC ...
        (1, "ETHUSDT", "sell", 10.0, 8.0, "b", "a"),   # ... and 80 in ETH: 180 in all
        (2, "BTCUSDT", "buy", 150.0, 1.0, "a", "c"),   # a with c: 150, more than either of b's legs
    ]))
    rows = by_account(counterparty_features(day))
    assert rows["a"]["top_counterparty_share"] == approx(180 / 330)
    assert rows["c"]["top_counterparty_share"] == approx(1.0)
    assert rows["a"]["net_position_ratio"] == approx((1.0 * 250 + 1.0 * 80) / 330)  # BTC bought 2, ETH sold 8


def test_features_do_not_depend_on_the_fills_order():
    day = _day()
    expected = counterparty_features(day).collect().sort("account_id")
    day.fills = day.fills.collect().sample(fraction=1.0, shuffle=True, seed=3).lazy()
    got = counterparty_features(day).collect().sort("account_id")
    assert_frame_equal(got, expected, rel_tol=1e-12, abs_tol=1e-15, categorical_as_str=True)
