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
