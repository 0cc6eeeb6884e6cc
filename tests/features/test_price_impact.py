import random
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from surveillance_pipeline.features.base import Fill
from surveillance_pipeline.features.price_impact import (
    _CLOCK_BITS,
    FEATURES,
    _book_quotes,
    _live_ranks,
    _ordered_takers,
    price_impact_features,
)
from tests.features.conftest import by_account, inputs, orders, trades

DAY = timedelta(days=1)

NAMES = ["account_id"] + [f.name for f in FEATURES]


def _vwap_day():
    return inputs(trades([
        (0, "BTCUSDT", "buy", 100.0, 1.0, "a", "b"),    # a takes (buys)
        (10, "BTCUSDT", "sell", 102.0, 3.0, "c", "a"),  # a takes (sells)
        (60, "BTCUSDT", "buy", 110.0, 1.0, "d", "b"),   # 10:01, its own minute
    ]))


def test_columns_are_the_catalogue():
    assert price_impact_features(_vwap_day()).collect().columns == NAMES


def test_anonymous_tape_has_no_rows():
    day = inputs(trades([(0, "BTCUSDT", "buy", 100.0, 1.0, None, None),
                         (5, "BTCUSDT", "sell", 99.0, 1.0, None, None)]))
    frame = price_impact_features(day).collect()
    assert frame.columns == NAMES and frame.height == 0


def test_vwap_deviation(approx):
    rows = by_account(price_impact_features(_vwap_day()))
    # 10:00 VWAP = (100 x 1 + 102 x 3) / 4 = 101.5; 10:01 VWAP = 110
    # a: (|100 - 101.5| + |102 - 101.5|) / 2 / 101.5 x 1e4 = 1 / 101.5 x 1e4
    assert rows["a"]["vwap_deviation_bps"] == approx(98.52216748768473)
    # b: (1.5 / 101.5 x 1e4 + 0 / 110) / 2 = 0.75 / 101.5 x 1e4
    assert rows["b"]["vwap_deviation_bps"] == approx(73.89162561576354)
    assert rows["d"]["vwap_deviation_bps"] == 0.0


def test_slippage(approx):
    rows = by_account(price_impact_features(_vwap_day()))
    # a bought at 100 (+1 x -1.5) and sold at 102 (-1 x +0.5): mean (-1.5 - 0.5) / 2 / 101.5 x 1e4
    assert rows["a"]["slippage_bps"] == approx(-98.52216748768473)
    assert rows["d"]["slippage_bps"] == 0.0
    assert rows["b"]["slippage_bps"] is None and rows["c"]["slippage_bps"] is None  # makers only


def test_reversal(approx):
    day = inputs(trades([
        (0, "BTCUSDT", "buy", 100.0, 1.0, "a", "m"),    # a buys at 100
        (5, "BTCUSDT", "buy", 101.0, 1.0, None, None),
        (20, "BTCUSDT", "sell", 99.0, 1.0, None, None),
        (40, "BTCUSDT", "sell", 98.0, 1.0, None, None),
        (50, "BTCUSDT", "sell", 98.5, 1.0, "m", "a"),   # a sells at 98.5; nothing trades after it
    ]), reversal_seconds=30)
    rows = by_account(price_impact_features(day))
    # buy at t=0: p(30 s) = 99 (t=20) -> -(+1) x (99 - 100) / 100 x 1e4 = +100
    # sell at t=50: p(80 s) = 98.5, its own price -> 0;  mean (100 + 0) / 2
    assert rows["a"]["reversal_bps"] == approx(50.0)
    assert rows["m"]["reversal_bps"] is None


def test_effective_spread_from_trade_bounce(approx):
    day = inputs(trades([
        (0, "BTCUSDT", "buy", 101.0, 1.0, None, None),
        (1, "BTCUSDT", "sell", 99.0, 1.0, None, None),
        (2, "BTCUSDT", "buy", 101.5, 1.0, "a", "m"),    # last buy 101, last sell 99: mid 100
        (3, "BTCUSDT", "sell", 99.2, 1.0, "m", "a"),    # last buy 101.5, last sell 99: mid 100.25
        (3, "ETHUSDT", "buy", 10.0, 1.0, "e", "m"),     # nothing traded before: no mid
    ]))
    rows = by_account(price_impact_features(day))
    # t=2: 2 x 1.5 / 100 x 1e4 = 300;  t=3: 2 x 1.05 / 100.25 x 1e4 = 209.47630922693267
    # mean (300 + 209.47630922693267) / 2
    assert rows["a"]["effective_spread_bps"] == approx(254.73815461346633)
    assert rows["e"]["effective_spread_bps"] is None
    assert rows["m"]["effective_spread_bps"] is None


def test_effective_spread_from_order_book(approx):
    day_trades = trades([
        (0, "BTCUSDT", "buy", 100.8, 1.0, "a", "n"),    # a lifts n's ask so0 (fills it: it leaves the book)
        (10, "BTCUSDT", "sell", 99.0, 1.0, "m", "a"),   # a hits a bid
        (20, "BTCUSDT", "buy", 101.0, 1.0, "m", "n"),   # m buys: the only ask left is m's own
    ])
    day_orders = orders([
        (-10, "o1", "m", "BTCUSDT", "buy", 99.0, 1.0, "new"),
        (-10, "o2", "n", "BTCUSDT", "buy", 99.5, 1.0, "new"),
        (-1, "o2", "n", "BTCUSDT", "buy", None, None, "cancel"),    # gone before t=0
        (-10, "o3", "m", "BTCUSDT", "sell", 101.0, 5.0, "new"),
        (-10, "o4", "a", "BTCUSDT", "buy", 100.5, 1.0, "new"),      # a's own bid: not a quote for a
        (-10, "so0", "n", "BTCUSDT", "sell", 100.8, 1.0, "new"),    # filled by trade 0
    ])
    rows = by_account(price_impact_features(inputs(day_trades, day_orders)))
    # a at t=0: bid 99.0 (o1), ask 100.8 (so0, live up to its fill) -> mid 99.9: 2 x 0.9 / 99.9 x 1e4
    #   = 180.18018018018017;  at t=10: bid 99.0, ask 101.0 (o3) -> mid 100: 2 x 1 / 100 x 1e4 = 200
    assert rows["a"]["effective_spread_bps"] == approx((180.18018018018017 + 200.0) / 2)
    # m at t=20: bid 100.5 (o4) but no ask of another account -> bounce: last buy 100.8, last sell 99
    #   -> mid 99.9: 2 x 1.1 / 99.9 x 1e4
    assert rows["m"]["effective_spread_bps"] == approx(220.22022022022023)


def _naive_quotes(day_trades: pl.DataFrame, day_orders: pl.DataFrame, fills: pl.DataFrame) -> dict:
    """Best bid / ask of the other accounts per taker fill, by brute force (the test's oracle)."""
    new, end = {}, {}
    for row in day_orders.sort("timestamp").iter_rows(named=True):
        if row["event"] == "new":
            new[row["order_id"]] = row
        else:
            end.setdefault(row["order_id"], row["timestamp"])  # the first cancel
    filled: dict[str, float] = {}
    for row in day_trades.sort("timestamp").iter_rows(named=True):
        for oid in (row["buyer_order_id"], row["seller_order_id"]):
            if oid in new:
                filled[oid] = filled.get(oid, 0.0) + row["quantity"]
                if filled[oid] >= new[oid]["quantity"] and row["timestamp"] < end.get(oid, row["timestamp"] + DAY):
                    end[oid] = row["timestamp"]  # fully filled before any cancel
    quotes = {}
    for fill in fills.filter(pl.col(Fill.IS_TAKER)).iter_rows(named=True):
        t = fill["timestamp"]
        live = [o for oid, o in new.items()
                if o["user_id"] != fill["account_id"] and o["timestamp"] <= t <= end.get(oid, t)]
        bids = [o["price"] for o in live if o["side"] == "buy"]
        asks = [o["price"] for o in live if o["side"] == "sell"]
        if bids or asks:
            quotes[fill["fill_row"]] = (max(bids) if bids else None, min(asks) if asks else None)
    return quotes


@pytest.mark.parametrize(("seed", "n_orders", "lifetime_s"), [(7, 500, 40.0), (8, 150, 20.0), (9, 60, 200.0)])
def test_order_book_reconstruction_matches_brute_force(seed, n_orders, lifetime_s):
    rng = random.Random(seed)
    accounts = [f"u{i}" for i in range(6)]
    order_rows, trade_rows = [], []
    for i in range(n_orders):  # a thick or a thin book; 40 % of the orders are never cancelled
        placed, user, side = rng.uniform(-50, 600), rng.choice(accounts), rng.choice(["buy", "sell"])
        order_rows.append((placed, f"o{i}", user, "BTCUSDT", side, round(100 + rng.uniform(-3, 3), 1), 1.0, "new"))
        if rng.random() < 0.6:
            order_rows.append((placed + rng.expovariate(1 / lifetime_s), f"o{i}", user, "BTCUSDT", side, None, None,
                               "cancel"))
    for i in range(400):  # 400 fill times (> 256: three levels of the 16-ary tree), 1.5 s apart
        trade_rows.append((i * 1.5 + rng.choice([0, 0, 0.5]), "BTCUSDT", rng.choice(["buy", "sell"]),
                           round(100 + rng.uniform(-3, 3), 1), rng.choice([0.5, 1.0]), *rng.sample(accounts, 2)))
    day_orders = orders(order_rows)
    day_trades = trades(trade_rows).with_columns(  # every third trade fills (part of) resting order o<i>
        pl.when(pl.int_range(pl.len()) % 3 == 0).then(pl.format("o{}", pl.int_range(pl.len())))
        .otherwise(pl.col("seller_order_id")).alias("seller_order_id"))
    day = inputs(day_trades, day_orders)
    fills = day.fills.with_row_index("fill_row")
    got = {r["fill_row"]: (r["best_bid"], r["best_ask"])
           for r in _book_quotes(day, fills.filter(pl.col(Fill.IS_TAKER))).collect().iter_rows(named=True)
           if (r["best_bid"], r["best_ask"]) != (None, None)}
    expected = _naive_quotes(day_trades, day_orders, fills.collect())
    assert len(expected) > 200
    assert got == expected


def test_order_book_keeps_symbols_apart():
    # BTC fills at t=0 and t=10, ETH fills at t=20 and t=30: an order of one symbol never quotes the other's
    # fills, even when its life ends past its symbol's last fill or starts before the other's first.
    day_trades = trades([
        (0, "BTCUSDT", "buy", 100.0, 1.0, "a", "x"),
        (10, "BTCUSDT", "buy", 100.0, 1.0, "a", "x"),
        (20, "ETHUSDT", "buy", 10.0, 1.0, "a", "x"),
        (30, "ETHUSDT", "buy", 10.0, 1.0, "a", "x"),
    ])
    day_orders = orders([
        (5, "b1", "m", "BTCUSDT", "buy", 99.0, 1.0, "new"),      # live for the BTC fill at t=10 only
        (15, "b2", "m", "BTCUSDT", "sell", 101.0, 1.0, "new"),   # placed after BTC's last fill: no quote
        (-5, "e1", "m", "ETHUSDT", "sell", 11.0, 1.0, "new"),    # live to the day's end: both ETH fills
        (-5, "e2", "m", "ETHUSDT", "buy", 9.0, 1.0, "new"),
        (15, "e2", "m", "ETHUSDT", "buy", None, None, "cancel"),  # ends before ETH's first fill: no quote
    ])
    day = inputs(day_trades, day_orders)
    fills = day.fills.with_row_index("fill_row")
    takers = fills.filter(pl.col(Fill.IS_TAKER)).select("fill_row", "symbol", "timestamp").collect()
    got = {r["fill_row"]: (r["best_bid"], r["best_ask"])
           for r in _book_quotes(day, fills.filter(pl.col(Fill.IS_TAKER))).collect().iter_rows(named=True)
           if (r["best_bid"], r["best_ask"]) != (None, None)}
    rows = {(r["symbol"], r["timestamp"].second): r["fill_row"] for r in takers.iter_rows(named=True)}
    assert got == {rows[("BTCUSDT", 10)]: (99.0, None), rows[("ETHUSDT", 20)]: (None, 11.0),
                   rows[("ETHUSDT", 30)]: (None, 11.0)}


def test_order_book_of_several_symbols_matches_brute_force():
    # Three symbols with interleaved fill times (bursts at one instant included), orders placed after the
    # last fill or gone before the first one, and long-lived orders: each symbol's book against the oracle.
    rng = random.Random(11)
    accounts, symbols = [f"u{i}" for i in range(5)], ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    order_rows, by_symbol = [], {s: [] for s in symbols}
    for i in range(450):
        symbol, user, side = rng.choice(symbols), rng.choice(accounts), rng.choice(["buy", "sell"])
        placed = rng.choice([rng.uniform(-50, 600), rng.uniform(-50, 600), rng.uniform(600, 700)])
        order_rows.append((placed, f"o{i}", user, symbol, side, 100 + rng.randint(-6, 6) / 2, 1.0, "new"))
        by_symbol[symbol].append(f"o{i}")
        if rng.random() < 0.6:
            life = rng.choice([rng.expovariate(1 / 30), rng.uniform(0, 2)])
            order_rows.append((placed + life, f"o{i}", user, symbol, side, None, None, "cancel"))
    trade_rows, sellers = [], []
    for i in range(500):
        t = rng.choice([rng.uniform(0, 600), 300.0, 450.25])  # bursts: many fills at one instant
        symbol = rng.choice(symbols)
        trade_rows.append((t, symbol, rng.choice(["buy", "sell"]), round(100 + rng.uniform(-3, 3), 1),
                           rng.choice([0.5, 1.0]), *rng.sample(accounts, 2)))
        sellers.append(rng.choice(by_symbol[symbol]) if rng.random() < 0.4 else None)
    day_orders = orders(order_rows)
    day_trades = trades(trade_rows).with_columns(  # some trades fill (part of) a resting order of their symbol
        pl.Series("resting", sellers, dtype=pl.String)).with_columns(
        pl.coalesce("resting", "seller_order_id").alias("seller_order_id")).drop("resting")
    day = inputs(day_trades, day_orders)
    fills = day.fills.with_row_index("fill_row")
    got = {r["fill_row"]: (r["best_bid"], r["best_ask"])
           for r in _book_quotes(day, fills.filter(pl.col(Fill.IS_TAKER))).collect().iter_rows(named=True)
           if (r["best_bid"], r["best_ask"]) != (None, None)}
    all_fills, expected = fills.collect(), {}
    for symbol in symbols:
        def of(frame: pl.DataFrame, symbol: str = symbol) -> pl.DataFrame:
            return frame.filter(pl.col("symbol") == symbol)
        expected.update(_naive_quotes(of(day_trades), of(day_orders), of(all_fills)))
    assert len(expected) > 300
    assert got == expected


def test_time_buckets_search_like_searchsorted():
    # The ranks [a, b) of an order come from a bucket table and a short search: the same as a binary search
    # for times in bursts, in gaps, before a symbol's first time and after its last, and for a symbol
    # without times.
    rng = np.random.default_rng(5)
    bursts = [rng.integers(2_000, 3_000, 400), rng.integers(10**9, 10**9 + 50, 300), rng.integers(1, 10**11, 500)]
    times = np.unique(np.concatenate([(code << _CLOCK_BITS) + offsets for code, offsets in zip([0, 0, 2], bursts)]))
    clock = np.concatenate([times, times - 1, times + 1, rng.integers(0, 4 << _CLOCK_BITS, 5_000),
                            (np.arange(4) << _CLOCK_BITS) + 1, (np.arange(4) << _CLOCK_BITS) + (1 << _CLOCK_BITS) - 1])
    for index in (np.int32, np.int64):
        a, b = _live_ranks(times, clock, clock, 4, index)
        assert np.array_equal(a, np.searchsorted(times, clock, side="left"))
        assert np.array_equal(b, np.searchsorted(times, clock, side="right"))
    a, b = _live_ranks(times[:0], clock, clock, 4, np.int64)  # no times at all
    assert not a.any() and not b.any()


_REVERSAL_ROWS = [
    (0, "BTCUSDT", "buy", 100.0, 1.0, "a", "m"),
    (5, "BTCUSDT", "buy", 101.0, 1.0, "b", "m"),
    (20, "BTCUSDT", "sell", 99.0, 1.0, "m", "c"),
    (40, "BTCUSDT", "sell", 98.0, 1.0, "m", "b"),
    (50, "BTCUSDT", "sell", 98.5, 1.0, "c", "a"),
    (50, "ETHUSDT", "buy", 10.0, 1.0, "b", "c"),
    (70, "ETHUSDT", "sell", 9.5, 1.0, "a", "b"),
]


def _same_features(left: dict, right: dict, approx) -> None:
    assert left.keys() == right.keys()
    for account, row in left.items():
        for name in NAMES[1:]:
            assert right[account][name] == (None if row[name] is None else approx(row[name])), (account, name)


def test_tape_out_of_time_order_gives_the_same_features(approx):
    in_order = by_account(price_impact_features(inputs(trades(_REVERSAL_ROWS), reversal_seconds=30)))
    shuffled = by_account(price_impact_features(inputs(trades(_REVERSAL_ROWS[::-1]), reversal_seconds=30)))
    assert in_order["a"]["reversal_bps"] is not None and in_order["b"]["effective_spread_bps"] is not None
    _same_features(in_order, shuffled, approx)


def test_fills_far_from_the_day_start_keep_their_time_order(approx):
    # 40 days after the day's start the book's clock is clipped (+-25 days): one value for every fill.
    # The bounce and the reversal still see the fills of a symbol in time order, as on the day itself.
    shift = 40 * 86400
    far_rows = [(seconds + shift, *rest) for seconds, *rest in _REVERSAL_ROWS[::-1]]
    near = by_account(price_impact_features(inputs(trades(_REVERSAL_ROWS), reversal_seconds=30)))
    far_day = inputs(trades(far_rows), reversal_seconds=30)
    _same_features(near, by_account(price_impact_features(far_day)), approx)
    ordered, _ = _ordered_takers(far_day, far_day.fills.with_row_index("fill_row").filter(pl.col(Fill.IS_TAKER)))
    assert ordered.group_by("symbol_code").agg(pl.col("timestamp").is_sorted()).get_column("timestamp").all()
