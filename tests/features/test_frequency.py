import polars as pl

from surveillance_pipeline.features.frequency import FEATURES, frequency_features
from tests.features.conftest import by_account, inputs, orders, trades


def _day():
    day_trades = trades([
        (0, "BTCUSDT", "buy", 100.0, 1.0, "a", "b"),
        (10, "BTCUSDT", "sell", 100.0, 1.0, "c", "a"),
        (3700, "BTCUSDT", "buy", 100.0, 1.0, "a", "c"),  # 11:01: a second hour for a
    ])
    history = trades([(-86_400, "BTCUSDT", "buy", 99.0, 1.0, "a", "b")])
    day_orders = orders([
        (0.0, "o1", "a", "BTCUSDT", "buy", 100.0, 1.0, "new"),
        (0.2, "o1", "a", "BTCUSDT", "buy", None, None, "cancel"),      # 200 ms
        (0.5, "o2", "a", "BTCUSDT", "buy", 100.0, 1.0, "new"),
        (3.5, "o2", "a", "BTCUSDT", "buy", None, None, "cancel"),      # 3 000 ms
        (0.7, "o3", "a", "BTCUSDT", "sell", 101.0, 1.0, "new"),
        (70.0, "o4", "d", "BTCUSDT", "sell", 101.0, 1.0, "new"),       # d: orders, no fills
    ])
    return inputs(day_trades, day_orders, history)


def test_columns_are_the_catalogue():
    frame = frequency_features(_day()).collect()
    assert frame.columns == ["account_id"] + [f.name for f in FEATURES]


def test_trade_counts():
    rows = by_account(frequency_features(_day()))
    assert (rows["a"]["trades_day"], rows["a"]["trades_week"], rows["a"]["max_trades_per_hour"]) == (3, 4, 2)
    assert (rows["b"]["trades_day"], rows["b"]["trades_week"]) == (1, 2)
    assert (rows["d"]["trades_day"], rows["d"]["trades_week"]) == (0, 0)


def test_order_ratios_and_bursts():
    rows = by_account(frequency_features(_day()))
    a = rows["a"]
    assert a["order_to_trade_ratio"] == 3 / 3 and a["cancel_rate"] == 2 / 3
    assert a["max_orders_per_second"] == 4  # o1 new+cancel, o2 new, o3 new inside 10:00:00
    assert a["max_orders_per_minute"] == 5
    assert a["cancel_latency_median_ms"] == (200 + 3000) / 2
    assert a["fast_cancel_share"] == 0.5
    assert rows["d"]["order_to_trade_ratio"] == 1.0 and rows["d"]["cancel_rate"] == 0.0
    assert rows["b"]["cancel_rate"] is None and rows["b"]["cancel_latency_median_ms"] is None


def _bursty_orders():
    return orders([
        (0.1, "o1", "a", "BTCUSDT", "buy", 100.0, 1.0, "new"),
        (0.15, "o2", "b", "BTCUSDT", "buy", 100.0, 1.0, "new"),
        (0.2, "o3", "a", "BTCUSDT", "buy", 100.0, 1.0, "new"),
        (0.5, "o2", "b", "BTCUSDT", "buy", 100.0, 1.0, "fill"),       # a fill is no order message
        (0.9, "o1", "a", "BTCUSDT", "buy", None, None, "cancel"),      # a: 3 messages in 10:00:00
        (0.95, "o2", "b", "BTCUSDT", "buy", None, None, "cancel"),     # b: 2 messages in 10:00:00
        (1.5, "o4", "a", "BTCUSDT", "sell", 101.0, 1.0, "new"),
        (1.6, "o4", "a", "BTCUSDT", "sell", 101.5, 1.0, "modify"),     # a: 2 in 10:00:01
        (59.9, "o5", "a", "BTCUSDT", "sell", 102.0, 1.0, "new"),       # a: 6 in the 10:00 minute
        (60.0, "o6", "a", "BTCUSDT", "sell", 102.0, 1.0, "new"),
        (60.5, "o7", "a", "BTCUSDT", "sell", 102.0, 1.0, "new"),       # a: 2 in 10:01
        (3.0, "o8", "f", "BTCUSDT", "buy", 100.0, 1.0, "fill"),        # f: fills only
    ])


def test_bursts_count_each_account_apart_and_skip_fills():
    rows = by_account(frequency_features(inputs(trades([]), _bursty_orders())))
    assert (rows["a"]["max_orders_per_second"], rows["a"]["max_orders_per_minute"]) == (3, 6)
    assert (rows["b"]["max_orders_per_second"], rows["b"]["max_orders_per_minute"]) == (2, 2)
    assert (rows["f"]["max_orders_per_second"], rows["f"]["max_orders_per_minute"]) == (0, 0)
    assert rows["f"]["order_to_trade_ratio"] == 0.0 and rows["f"]["trades_day"] == 0
    assert rows["a"]["cancel_rate"] == 1 / 6 and rows["b"]["cancel_rate"] == 1.0  # a: 6 new orders, 1 cancel


def test_bursts_of_a_tape_spanning_a_century():
    century = -100 * 365 * 86_400  # order times this far from the day take the hashed path: same counts
    old = orders([(century + 0.1, "p1", "a", "BTCUSDT", "buy", 100.0, 1.0, "new"),
                  (century + 0.2, "p2", "a", "BTCUSDT", "buy", 100.0, 1.0, "new"),
                  (century + 0.3, "p3", "a", "BTCUSDT", "buy", 100.0, 1.0, "new"),
                  (century + 0.4, "p4", "a", "BTCUSDT", "buy", 100.0, 1.0, "new")])
    rows = by_account(frequency_features(inputs(trades([]), pl.concat([_bursty_orders(), old]))))
    assert (rows["a"]["max_orders_per_second"], rows["a"]["max_orders_per_minute"]) == (4, 6)
    assert (rows["b"]["max_orders_per_second"], rows["b"]["max_orders_per_minute"]) == (2, 2)


def test_cancel_latency_takes_the_first_new_and_the_first_cancel():
    day_orders = orders([
        (0.0, "o1", "a", "BTCUSDT", "buy", 100.0, 1.0, "new"),
        (0.4, "o1", "a", "BTCUSDT", "buy", 100.0, 1.0, "new"),         # a second `new` of o1: not its start
        (2.0, "o1", "a", "BTCUSDT", "buy", None, None, "cancel"),      # 2 000 ms from the first new
        (5.0, "o1", "a", "BTCUSDT", "buy", None, None, "cancel"),      # a later cancel: not counted
        (1.0, "o2", "a", "BTCUSDT", "buy", 100.0, 1.0, "new"),
        (1.5, "o2", "a", "BTCUSDT", "buy", None, None, "cancel"),      # 500 ms
        (3.0, "o9", "a", "BTCUSDT", "buy", None, None, "cancel"),      # a cancel without its order: ignored
    ])
    row = by_account(frequency_features(inputs(trades([]), day_orders)))["a"]
    assert row["cancel_latency_median_ms"] == (2000 + 500) / 2 and row["fast_cancel_share"] == 0.5
    assert row["cancel_rate"] == 4 / 3  # cancel events / new events


def test_cancel_rate_is_undefined_for_an_account_that_only_cancels_earlier_orders():
    day_orders = orders([
        (5.0, "old-1", "e", "BTCUSDT", "buy", None, None, "cancel"),   # placed on an earlier day
        (6.0, "old-2", "e", "BTCUSDT", "buy", None, None, "cancel"),
    ])
    rows = by_account(frequency_features(inputs(trades([(0, "BTCUSDT", "buy", 100.0, 1.0, "a", "b")]), day_orders)))
    assert rows["e"]["cancel_rate"] is None  # not inf: no new order today to divide by
