import math

import pytest

from surveillance_pipeline.features.volume import FEATURES, volume_features
from tests.features.conftest import by_account, inputs, trades

DAY_S = 86_400


def _day(**settings):
    # DAY is Monday 2026-03-02; notional = price x quantity.
    day_trades = trades([
        (0, "BTCUSDT", "buy", 100.0, 1.0, "a", "b"),   # a 100, b 100
        (10, "BTCUSDT", "sell", 200.0, 1.0, "c", "a"),  # c 200, a 200
        (20, "ETHUSDT", "buy", 50.0, 2.0, "a", "a"),    # self-trade: a 100 bought + a 100 sold
    ])
    history = trades([
        (-DAY_S, "BTCUSDT", "buy", 100.0, 1.0, "a", "b"),        # Mar 1: a 100, b 100
        (-2 * DAY_S, "BTCUSDT", "buy", 300.0, 1.0, "a", "d"),    # Feb 28: a 300, d 300 (d: history only)
        (-7 * DAY_S, "BTCUSDT", "buy", 1000.0, 1.0, "a", "b"),   # Feb 23: outside the 7-day window
    ])
    return inputs(day_trades, history=history, **settings)


def test_columns_are_the_catalogue():
    frame = volume_features(_day()).collect()
    assert frame.columns == ["account_id"] + [f.name for f in FEATURES]
    assert sorted(frame["account_id"]) == ["a", "b", "c"]  # d has only history: no row


def test_anonymous_tape_gives_no_rows():
    tape = trades([(0, "BTCUSDT", "buy", 100.0, 1.0, None, None), (1, "BTCUSDT", "sell", 101.0, 1.0, None, None)])
    frame = volume_features(inputs(tape, history=tape)).collect()
    assert frame.height == 0
    assert frame.columns == ["account_id"] + [f.name for f in FEATURES]


def test_trade_size_mean():
    rows = by_account(volume_features(_day()))
    assert rows["a"]["trade_size_mean"] == pytest.approx(125.0)  # (100 + 200 + 100 + 100) / 4
    assert rows["c"]["trade_size_mean"] == pytest.approx(200.0)  # one fill of 200


def test_trade_size_median():
    rows = by_account(volume_features(_day()))
    assert rows["a"]["trade_size_median"] == pytest.approx(100.0)  # sorted 100, 100, 100, 200 -> (100 + 100) / 2


def test_trade_size_std():
    rows = by_account(volume_features(_day()))
    # mean 125, deviations -25, 75, -25, -25 -> squares 625 + 5625 + 625 + 625 = 7500; / (4 - 1) = 2500 -> 50
    assert rows["a"]["trade_size_std"] == pytest.approx(50.0)
    assert rows["b"]["trade_size_std"] is None  # one fill: undefined


def test_volume_day():
    rows = by_account(volume_features(_day()))
    assert rows["a"]["volume_day"] == pytest.approx(500.0)  # 100 + 200 + 100 + 100 (self-trade both sides)
    assert rows["b"]["volume_day"] == pytest.approx(100.0)
    assert rows["c"]["volume_day"] == pytest.approx(200.0)


def test_volume_percentile():
    rows = by_account(volume_features(_day()))
    # volumes a 500, b 100, c 200 -> ranks 3, 1, 2 of 3 accounts
    assert rows["a"]["volume_percentile"] == pytest.approx(1.0)      # 3 / 3
    assert rows["b"]["volume_percentile"] == pytest.approx(1 / 3)    # 1 / 3
    assert rows["c"]["volume_percentile"] == pytest.approx(2 / 3)    # 2 / 3
    ties = by_account(volume_features(inputs(trades([
        (0, "BTCUSDT", "buy", 100.0, 1.0, "p", "q"),  # p 100, q 100
        (1, "BTCUSDT", "buy", 300.0, 1.0, "r", "s"),  # r 300, s 300
    ]))))
    # ties take the highest rank: p, q -> 2 of 4 = 0.5; r, s -> 4 of 4 = 1.0
    assert [ties[k]["volume_percentile"] for k in "pqrs"] == pytest.approx([0.5, 0.5, 1.0, 1.0])


def test_volume_spike_ratio():
    rows = by_account(volume_features(_day()))
    # a: history days in the window Mar 1 = 100, Feb 28 = 300 (Feb 23 is outside) -> mean 200; 500 / 200
    assert rows["a"]["volume_spike_ratio"] == pytest.approx(2.5)
    assert rows["b"]["volume_spike_ratio"] == pytest.approx(1.0)  # Mar 1 = 100; 100 / 100
    assert rows["c"]["volume_spike_ratio"] is None  # no history
    # lookback_days=1: the window is the day alone, so no history day for anyone
    assert by_account(volume_features(_day(lookback_days=1)))["a"]["volume_spike_ratio"] is None


def test_volume_consistency():
    rows = by_account(volume_features(_day()))
    # a, 7 days Feb 24..Mar 2: 500, 100, 300 and four 0s; mean 900 / 7 = 128.571;
    # squared deviations 371.43^2 + 28.57^2 + 171.43^2 + 4 x 128.57^2 = 234285.71; / 6 = 39047.62
    # -> std 197.605, CV 197.605 / 128.571 = 1.53693 -> 1 / 2.53693 = 0.394178
    assert rows["a"]["volume_consistency"] == pytest.approx(0.3941779, rel=1e-6)

    two = by_account(volume_features(_day(lookback_days=2)))  # window Mar 1..Mar 2
    # a: 500, 100 -> mean 300, std 400 / sqrt 2 = 282.84, CV 0.94281 -> 1 / 1.94281 = 0.514719
    assert two["a"]["volume_consistency"] == pytest.approx(0.5147186, rel=1e-6)
    assert two["b"]["volume_consistency"] == pytest.approx(1.0)  # 100, 100: CV 0
    # c: 200 and a day without fills = 0 -> mean 100, std 200 / sqrt 2 = 141.42, CV sqrt 2 -> 1 / (1 + sqrt 2)
    assert two["c"]["volume_consistency"] == pytest.approx(math.sqrt(2) - 1)

    # one day: the sample std of a single daily volume is undefined
    assert by_account(volume_features(_day(lookback_days=1)))["a"]["volume_consistency"] is None
