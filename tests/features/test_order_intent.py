"""Order-intent features on two hand-made accounts: a spoofer `s` and a market maker `m`.

The `trades` helper names trade i's orders `bo{i}` (buyer) and `so{i}` (seller): orders with those ids are
the ones the trades filled. Default settings: large = 5 x the median size, fast cancel = 1 000 ms.
"""
import random
from collections import defaultdict
from datetime import timedelta
from statistics import median

import polars as pl
import pytest

from surveillance_pipeline.features.order_intent import FEATURES, order_intent_features
from tests.features.conftest import at, by_account, inputs, orders, trades

BTC = "BTCUSDT"


def _day():
    day_trades = trades([
        (0.5, BTC, "buy", 100.0, 1.0, "x", "s"),   # t0 fills s's sell so0, before any large order
        (12, BTC, "buy", 100.0, 1.0, "x", "s"),    # t1 fills s's sell so1 while large buys L2 and L3 rest
        (14, BTC, "sell", 100.2, 1.0, "s", "y"),   # t2 fills s's buy bo2: same side as its large orders
        (8, BTC, "buy", 100.1, 1.0, "z", "m"),     # t3 fills m's sell quote so3
    ])
    day_orders = orders([
        # s, the spoofer: small real orders on the sell side (and one small buy), a layer of large buys.
        # sizes 1, 1, 1, 1, 1, 10, 10, 10: median 1, so large = size >= 5: L1, L2, L3
        (0, "so0", "s", BTC, "sell", 100.0, 1.0, "new"),     # filled by t0
        (10, "so1", "s", BTC, "sell", 100.0, 1.0, "new"),    # filled by t1
        (13, "bo2", "s", BTC, "buy", 100.2, 1.0, "new"),     # filled by t2
        (0, "sa", "s", BTC, "sell", 100.5, 1.0, "new"),
        (30, "sa", "s", BTC, "sell", None, None, "cancel"),
        (40, "sb", "s", BTC, "sell", 100.0, 1.0, "new"),
        (40.2, "sb", "s", BTC, "sell", None, None, "cancel"),
        (1, "L1", "s", BTC, "buy", 99.0, 10.0, "new"),
        (1.5, "L1", "s", BTC, "buy", None, None, "cancel"),  # 500 ms: fast
        (1, "L2", "s", BTC, "buy", 98.0, 10.0, "new"),
        (20, "L2", "s", BTC, "buy", None, None, "cancel"),   # 19 s: slow
        (2, "L3", "s", BTC, "buy", 97.0, 10.0, "new"),       # never cancelled: rests until the day's end
        # m, the market maker: one quote a side, size 1, replaced by cancel + new at the same instant
        (0, "m1", "m", BTC, "buy", 99.9, 1.0, "new"),
        (0, "m2", "m", BTC, "sell", 100.1, 1.0, "new"),
        (0.3, "m1", "m", BTC, "buy", None, None, "cancel"),
        (0.3, "m2", "m", BTC, "sell", None, None, "cancel"),
        (0.3, "m3", "m", BTC, "buy", 99.95, 1.0, "new"),
        (0.3, "m4", "m", BTC, "sell", 100.15, 1.0, "new"),
        (6, "m3", "m", BTC, "buy", None, None, "cancel"),
        (6, "m4", "m", BTC, "sell", None, None, "cancel"),
        (6, "m5", "m", BTC, "buy", 99.9, 1.0, "new"),
        (6, "so3", "m", BTC, "sell", 100.1, 1.0, "new"),     # filled by t3
        # q: one order, cancelled, never filled
        (0, "q1", "q", BTC, "buy", 90.0, 2.0, "new"),
        (100, "q1", "q", BTC, "buy", None, None, "cancel"),
    ])
    return inputs(day_trades, day_orders)


def test_columns_are_the_catalogue():
    frame = order_intent_features(_day()).collect()
    assert frame.columns == ["account_id"] + [f.name for f in FEATURES]
    assert sorted(frame["account_id"]) == ["m", "q", "s", "x", "y", "z"]


def test_anonymous_tape_without_orders_gives_no_rows():
    tape = trades([(0, BTC, "buy", 100.0, 1.0, None, None), (1, BTC, "sell", 99.0, 2.0, None, None)])
    frame = order_intent_features(inputs(tape)).collect()
    assert frame.height == 0
    assert frame.columns == ["account_id"] + [f.name for f in FEATURES]


def test_cancelled_to_filled_size_ratio():
    rows = by_account(order_intent_features(_day()))
    # s: cancelled sa 1, sb 1, L1 10, L2 10 -> mean 22 / 4 = 5.5; filled so0 1, so1 1, bo2 1 -> mean 1
    assert rows["s"]["cancelled_to_filled_size_ratio"] == 5.5
    # m: cancelled m1..m4, all size 1; filled so3, size 1 -> 1 / 1
    assert rows["m"]["cancelled_to_filled_size_ratio"] == 1.0
    assert rows["q"]["cancelled_to_filled_size_ratio"] is None  # nothing filled
    assert rows["x"]["cancelled_to_filled_size_ratio"] is None  # fills but no orders


def test_cancelled_to_filled_counts_fill_events():
    day_orders = orders([
        (0, "o1", "f", BTC, "buy", 99.0, 4.0, "new"),
        (1, "o1", "f", BTC, "buy", None, None, "cancel"),
        (0, "o2", "f", BTC, "buy", 99.0, 2.0, "new"),
        (1, "o2", "f", BTC, "buy", 99.0, 2.0, "fill"),   # filled per the order feed, no linked trade
    ])
    rows = by_account(order_intent_features(inputs(trades([]), day_orders)))
    assert rows["f"]["cancelled_to_filled_size_ratio"] == 2.0  # 4 / 2


def test_large_order_fast_cancel_share(approx):
    rows = by_account(order_intent_features(_day()))
    # s's large orders L1 (cancelled after 500 ms: fast), L2 (after 19 s), L3 (never cancelled) -> 1 / 3
    assert rows["s"]["large_order_fast_cancel_share"] == approx(1 / 3)
    # m: every order has the median size 1 < 5 x 1: no large order
    assert rows["m"]["large_order_fast_cancel_share"] is None
    assert rows["q"]["large_order_fast_cancel_share"] is None  # its only order is its median
    assert rows["x"]["large_order_fast_cancel_share"] is None


def test_large_is_relative_to_the_symbol_median():
    day_orders = orders([
        (0, "b1", "g", BTC, "buy", 99.0, 1.0, "new"),
        (0, "b2", "g", BTC, "buy", 98.0, 1.0, "new"),
        (0, "b3", "g", BTC, "buy", 97.0, 5.0, "new"),       # 5 >= 5 x median 1: large
        (0.1, "b3", "g", BTC, "buy", None, None, "cancel"),  # 100 ms: fast
        (0, "e1", "g", "ETHUSDT", "buy", 9.0, 50.0, "new"),  # ETH sizes 50, 50: median 50, none large
        (0, "e2", "g", "ETHUSDT", "buy", 8.0, 50.0, "new"),
    ])
    rows = by_account(order_intent_features(inputs(trades([]), day_orders)))
    assert rows["g"]["large_order_fast_cancel_share"] == 1.0  # 1 fast / 1 large


def test_opposite_fills_while_large_resting():
    rows = by_account(order_intent_features(_day()))
    # s sells at 0.5 (t0: no large order yet), sells at 12 (t1: large buys L2 [1, 20) and L3 [2, end)
    # rest; counted once), buys at 14 (t2: same side as the large orders) -> 1
    assert rows["s"]["opposite_fills_while_large_resting"] == 1
    assert rows["m"]["opposite_fills_while_large_resting"] == 0  # filled, but no large order ever rests
    assert rows["q"]["opposite_fills_while_large_resting"] == 0
    assert rows["x"]["opposite_fills_while_large_resting"] is None  # no orders


def test_opposite_fill_at_the_cancel_instant_is_not_counted():
    day_trades = trades([
        (10, BTC, "buy", 100.0, 1.0, "x", "k"),  # while K rests [5, 20): counted
        (20, BTC, "buy", 100.0, 1.0, "x", "k"),  # at K's cancel: no longer resting
        (5, BTC, "buy", 100.0, 1.0, "x", "k"),   # at K's new: resting
    ])
    day_orders = orders([
        (0, "so0", "k", BTC, "sell", 100.0, 1.0, "new"),
        (0, "so1", "k", BTC, "sell", 100.0, 1.0, "new"),
        (0, "so2", "k", BTC, "sell", 100.0, 1.0, "new"),
        (0, "k4", "k", BTC, "sell", 101.0, 1.0, "new"),
        (5, "K", "k", BTC, "buy", 95.0, 10.0, "new"),         # sizes 1, 1, 1, 1, 10: median 1, K large
        (20, "K", "k", BTC, "buy", None, None, "cancel"),
    ])
    rows = by_account(order_intent_features(inputs(day_trades, day_orders)))
    assert rows["k"]["opposite_fills_while_large_resting"] == 2  # the fills at 5 and 10


def test_max_price_levels_one_side():
    rows = by_account(order_intent_features(_day()))
    # s, buy side (fills ignored, so bo2 rests on after t2): L1 99 [1, 1.5), L2 98 [1, 20), L3 97 [2, end),
    # bo2 100.2 [13, end) -> at 13 s: 98, 97, 100.2 = 3 levels (sell side: 100.0 and 100.5 = 2)
    assert rows["s"]["max_price_levels_one_side"] == 3
    # m: one quote a side at every instant (a cancel and its replacement at the same instant) -> 1
    assert rows["m"]["max_price_levels_one_side"] == 1
    assert rows["q"]["max_price_levels_one_side"] == 1
    assert rows["x"]["max_price_levels_one_side"] is None


def test_price_levels_follow_modifies_and_merge_equal_prices():
    day_orders = orders([
        (0, "o1", "h", BTC, "buy", 99.0, 1.0, "new"),
        (1, "o1", "h", BTC, "buy", 98.0, 1.0, "modify"),   # o1 moves from 99 to 98: 1 level
        (2, "o2", "h", BTC, "buy", 99.0, 1.0, "new"),      # 98 and 99: 2 levels
        (3, "o3", "h", BTC, "buy", 98.0, 1.0, "new"),      # a second order at 98: still 2 levels
        (4, "o4", "h", BTC, "sell", 101.0, 1.0, "new"),    # the other side is counted apart
        (5, "o5", "h", BTC, "buy", 96.0, 1.0, "new"),
        (5, "o5", "h", BTC, "buy", 99.0, 1.0, "modify"),   # moved at once from 96 to 99: never at 96
        (6, "o6", "h", BTC, "buy", 95.0, 1.0, "new"),      # 95, 98, 99: 3 levels from 6 s ...
        (7, "o6", "h", BTC, "buy", None, None, "cancel"),  # ... to 7 s
        (8, "o6", "h", BTC, "buy", 94.0, 1.0, "modify"),   # after its cancel: ignored (else 94 would make 4)
        (8, "o8", "h", BTC, "buy", 93.0, 1.0, "new"),      # 93, 98, 99: 3 levels
        (9, "o7", "h", BTC, "buy", None, 1.0, "new"),      # no price (market order): not resting
    ])
    rows = by_account(order_intent_features(inputs(trades([]), day_orders)))
    assert rows["h"]["max_price_levels_one_side"] == 3


def test_repeated_order_ids_and_levels_across_books():
    day_orders = orders([
        (0, "r1", "k", BTC, "buy", 99.0, 1.0, "new"),
        (1, "r1", "k", BTC, "buy", 98.0, 1.0, "new"),      # a repeated `new`: the first one is the order
        (0, "r1", "k", "ETHUSDT", "buy", 99.0, 1.0, "new"),  # the same id in another symbol: another order
        (2, "r2", "k", BTC, "buy", 97.0, 1.0, "new"),      # 97 and 99 in BTC: 2 levels
        (3, "r3", "k", BTC, "sell", 99.0, 1.0, "new"),     # the same price on the other side: apart
        (4, "r4", "k2", BTC, "buy", 99.0, 1.0, "new"),     # and in another account's book
        (5, "r1", "k", BTC, "buy", None, None, "cancel"),
    ])
    rows = by_account(order_intent_features(inputs(trades([]), day_orders)))
    assert rows["k"]["max_price_levels_one_side"] == 2
    assert rows["k2"]["max_price_levels_one_side"] == 1


def test_trades_with_accounts_but_no_orders():
    day_trades = trades([(0, BTC, "buy", 100.0, 1.0, "a", "b")])
    rows = by_account(order_intent_features(inputs(day_trades)))
    assert set(rows) == {"a", "b"}
    assert all(value is None for row in rows.values() for name, value in row.items() if name != "account_id")


def _brute_force(day_orders: pl.DataFrame, day_trades: pl.DataFrame, multiple: float = 5.0):
    """max_price_levels_one_side and opposite_fills_while_large_resting by the definitions, row by row."""
    events = sorted(day_orders.to_dicts(), key=lambda e: e["timestamp"])  # stable: a new before its modify
    first_new, cancelled, modifies = {}, {}, defaultdict(list)
    for e in events:
        key = (e["symbol"], e["order_id"])
        if e["event"] == "new":
            first_new.setdefault(key, e)
        elif e["event"] == "cancel":
            cancelled.setdefault(key, e["timestamp"])
        elif e["event"] == "modify":
            modifies[key].append(e)
    day_end = at(0).replace(hour=0) + timedelta(days=1)
    segments = []  # (account, symbol, side, price, start, end)
    for key, order in first_new.items():
        if order["price"] is None:
            continue
        end = cancelled.get(key, day_end)
        stops = [(order["timestamp"], order["price"])] + [(m["timestamp"], m["price"]) for m in modifies[key]]
        stops = [stop for stop in stops if stop[0] < end]
        for i, (start, price) in enumerate(stops):
            stop_end = stops[i + 1][0] if i + 1 < len(stops) else end
            segments.append((order["user_id"], order["symbol"], order["side"], price, start, stop_end))
    levels = {}
    for t in sorted({s[4] for s in segments}):
        live = defaultdict(set)
        for account, symbol, side, price, start, end in segments:
            if start <= t < end:
                live[(account, symbol, side)].add(price)
        for (account, _, _), prices in live.items():
            levels[account] = max(levels.get(account, 0), len(prices))
    sizes = defaultdict(list)
    for (symbol, _), order in first_new.items():
        sizes[(order["user_id"], symbol)].append(order["quantity"])
    large = [o for (symbol, _), o in first_new.items()
             if o["price"] is not None and o["quantity"] >= multiple * median(sizes[(o["user_id"], symbol)])]
    opposite = defaultdict(int)
    for trade in day_trades.to_dicts():
        for account, other_side in ((trade["buyer_id"], "sell"), (trade["seller_id"], "buy")):
            opposite[account] += any(
                o["user_id"] == account and o["symbol"] == trade["symbol"] and o["side"] == other_side
                and o["timestamp"] <= trade["timestamp"] < cancelled.get((o["symbol"], o["order_id"]), day_end)
                for o in large)
    return levels, opposite


@pytest.mark.parametrize("seed", range(40))
def test_sweeps_agree_with_brute_force(seed):
    draw = random.Random(seed)
    rows = []
    for i in range(draw.randint(1, 25)):
        user, symbol, side = draw.choice("uvw"), draw.choice(["A", "B"]), draw.choice(["buy", "sell"])
        t, size = draw.randint(0, 20), draw.choice([1.0, 1.0, 1.0, 2.0, 10.0])
        rows.append((t, f"o{i}", user, symbol, side, draw.choice([99.0, 100.0, 101.0]), size, "new"))
        fate = draw.random()
        if fate < 0.5:
            rows.append((t + draw.randint(0, 5), f"o{i}", user, symbol, side, None, None, "cancel"))
        if fate > 0.7:
            rows.append((t + draw.randint(0, 5), f"o{i}", user, symbol, side, draw.choice([99.0, 103.0]), size,
                         "modify"))
    day_trades = trades([(draw.randint(0, 25), draw.choice(["A", "B"]), "buy", 100.0, 1.0, draw.choice("uvw"),
                          draw.choice("uvw")) for _ in range(draw.randint(0, 10))])
    day_orders = orders(rows)
    levels, opposite = _brute_force(day_orders, day_trades)
    for account, row in by_account(order_intent_features(inputs(day_trades, day_orders))).items():
        if account in {r[2] for r in rows}:
            assert row["max_price_levels_one_side"] == levels.get(account), account
            assert row["opposite_fills_while_large_resting"] == opposite.get(account, 0), account


def test_spoofer_scores_above_market_maker():
    rows = by_account(order_intent_features(_day()))
    s, m = rows["s"], rows["m"]
    assert s["cancelled_to_filled_size_ratio"] > m["cancelled_to_filled_size_ratio"]
    assert s["opposite_fills_while_large_resting"] > m["opposite_fills_while_large_resting"]
    assert s["max_price_levels_one_side"] > m["max_price_levels_one_side"]
    assert order_intent_features(_day()).collect().schema["max_price_levels_one_side"] == pl.Int64


def test_simultaneous_modifies_the_later_in_the_input_stands():
    day_orders = orders([
        (0, "o1", "h", BTC, "buy", 99.0, 1.0, "new"),
        (1, "o1", "h", BTC, "buy", 97.0, 1.0, "modify"),
        (1, "o1", "h", BTC, "buy", 98.0, 1.0, "modify"),   # same instant, later in the input: o1 stands at 98
        (2, "o2", "h", BTC, "buy", 97.0, 1.0, "new"),      # 97 and 98: 2 levels (3 if o1 stood at 97 and 98)
        (3, "o3", "h", BTC, "buy", 98.0, 1.0, "new"),      # joins o1's level: still 2
    ])
    rows = by_account(order_intent_features(inputs(trades([]), day_orders)))
    assert rows["h"]["max_price_levels_one_side"] == 2


def test_events_of_the_same_order_id_in_another_symbol_are_another_orders():
    day_orders = orders([
        (0, "x1", "c", BTC, "buy", 90.0, 10.0, "new"),        # sizes 10, 1, 2: median 2, x1 large
        (0, "x2", "c", BTC, "buy", 91.0, 1.0, "new"),
        (0, "x3", "c", BTC, "buy", 92.0, 2.0, "new"),
        (0, "x1", "c", "ETHUSDT", "buy", 92.0, 10.0, "modify"),   # another symbol: x1 in BTC stays at 90
        (0.1, "x1", "c", "ETHUSDT", "buy", None, None, "cancel"),  # another symbol: x1 in BTC is not cancelled
        (0.2, "x2", "c", BTC, "buy", None, None, "cancel"),   # x2 cancelled after 200 ms
        (1, "x3", "c", "ETHUSDT", "buy", 92.0, 2.0, "fill"),  # another symbol: x3 in BTC is not filled
        (1, "x2", "c", BTC, "buy", 91.0, 1.0, "fill"),        # x2 filled
    ])
    rows = by_account(order_intent_features(inputs(trades([]), day_orders)))
    # the only large order x1 is never cancelled in BTC: not fast (1.0 if the ETH cancel counted)
    assert rows["c"]["large_order_fast_cancel_share"] == 0.0
    # cancelled x2 (size 1) / filled x2 (size 1) (1 / 1.5 if the ETH fill counted for x3)
    assert rows["c"]["cancelled_to_filled_size_ratio"] == 1.0
    # 90, 91 and 92 from the start (2 levels if the ETH modify moved x1 to 92)
    assert rows["c"]["max_price_levels_one_side"] == 3


def test_orders_before_the_day_count_from_its_start():
    start = -10 * 3600  # T0 is 10:00 UTC: the day starts 10 hours before
    day_orders = orders([
        (start - 7200, "p1", "e", BTC, "sell", 101.0, 1.0, "new"),   # placed the day before ...
        (start - 3600, "p1", "e", BTC, "sell", None, None, "cancel"),  # ... and gone before the day: never live
        (start - 60, "p2", "e", BTC, "sell", 102.0, 1.0, "new"),     # placed the day before, live into the day
        (start - 30, "p3", "e", BTC, "sell", 103.0, 1.0, "new"),
        (start + 1, "p3", "e", BTC, "sell", None, None, "cancel"),   # live for the day's first second
        (start + 1, "p4", "e", BTC, "sell", 104.0, 1.0, "new"),      # placed as p3 leaves: 102, 104
    ])
    rows = by_account(order_intent_features(inputs(trades([]), day_orders)))
    assert rows["e"]["max_price_levels_one_side"] == 2  # 102 and 103, then 102 and 104; never 101


def _trades_with_orders(rows: list[tuple]) -> pl.DataFrame:
    """Trades from (seconds after T0, symbol, buyer, seller, buyer order id, seller order id)."""
    return pl.DataFrame(
        [{"trade_id": f"t{i}", "timestamp": at(s), "symbol": sym, "side": "buy", "price": 100.0, "quantity": 1.0,
          "buyer_id": b, "seller_id": se, "buyer_order_id": bo, "seller_order_id": so, "market_type": "spot",
          "quote_quantity": 100.0, "fee": 0.0}
         for i, (s, sym, b, se, bo, so) in enumerate(rows)],
        schema=trades([]).schema,
    )


def _brute_force_sizes(day_orders: pl.DataFrame, day_trades: pl.DataFrame, multiple: float = 5.0,
                       fast_ms: float = 1_000):
    """cancelled_to_filled_size_ratio and large_order_fast_cancel_share by the definitions, row by row."""
    first_new, first_cancel, filled = {}, {}, set()
    for e in day_orders.to_dicts():  # in input order: the first `new` of a (symbol, id) is the order
        key = (e["symbol"], e["order_id"])
        if e["event"] == "new":
            first_new.setdefault(key, e)
        elif e["event"] == "cancel":
            first_cancel[key] = min(first_cancel.get(key, e["timestamp"]), e["timestamp"])
        elif e["event"] == "fill":
            filled.add(key)
    for trade in day_trades.to_dicts():
        for account, order_id in ((trade["buyer_id"], trade["buyer_order_id"]),
                                  (trade["seller_id"], trade["seller_order_id"])):
            if account is not None and order_id is not None:
                filled.add((trade["symbol"], order_id))
    sized = {key: o for key, o in first_new.items() if o["quantity"] is not None}
    ratio, share = {}, {}
    for account in {o["user_id"] for o in sized.values()}:
        mine = {key: o for key, o in sized.items() if o["user_id"] == account}
        cancelled = [o["quantity"] for key, o in mine.items() if key in first_cancel]
        done = [o["quantity"] for key, o in mine.items() if key in filled]
        if cancelled and done:
            ratio[account] = (sum(cancelled) / len(cancelled)) / (sum(done) / len(done))
        large = [(key, o) for key, o in mine.items()
                 if o["price"] is not None and o["order_type"] != "market"
                 and o["quantity"] >= multiple * median([p["quantity"] for (s, _), p in mine.items() if s == key[0]])]
        if large:
            fast = [key in first_cancel and (first_cancel[key] - o["timestamp"]) / timedelta(milliseconds=1) <= fast_ms
                    for key, o in large]
            share[account] = sum(fast) / len(fast)
    return ratio, share


@pytest.mark.parametrize("seed", range(40))
def test_sizes_agree_with_brute_force(seed, approx):
    # few order ids over two symbols: the same id in both symbols, repeated `new`s, cancels and fills of ids
    # in the other symbol, cancels before the order
    draw = random.Random(seed)
    ids, symbols = [f"o{i}" for i in range(draw.randint(1, 12))], ["A", "B"]
    rows = []
    for _ in range(draw.randint(1, 40)):
        t, event = draw.randint(0, 5) + draw.choice([0, 0.5]), draw.choice(["new", "new", "new", "cancel", "fill"])
        size = draw.choice([1.0, 1.0, 2.0, 10.0, None]) if event == "new" else None
        price = draw.choice([99.0, 100.0, None]) if event == "new" else None
        rows.append((t, draw.choice(ids), draw.choice("uvw"), draw.choice(symbols), draw.choice(["buy", "sell"]),
                     price, size, event))
    day_orders = orders(rows).with_columns(
        pl.Series("order_type", [draw.choice(["limit", "limit", "market"]) for _ in rows]))
    day_trades = _trades_with_orders([
        (draw.randint(0, 5), draw.choice(symbols), draw.choice(["u", "v", None]), draw.choice(["w", None]),
         draw.choice(ids), draw.choice(ids)) for _ in range(draw.randint(0, 8))])
    ratio, share = _brute_force_sizes(day_orders, day_trades)
    for account, row in by_account(order_intent_features(inputs(day_trades, day_orders))).items():
        expected = ratio.get(account)
        got = row["cancelled_to_filled_size_ratio"]
        assert (got is None) if expected is None else got == approx(expected), account
        expected = share.get(account)
        got = row["large_order_fast_cancel_share"]
        assert (got is None) if expected is None else got == approx(expected), account
