import random

import polars as pl

from surveillance_pipeline.features.behaviour import FEATURES, behaviour_features, numbered_pairs, round_trips
from tests.features.conftest import inputs, trades

NAMES = ["account_id"] + [f.name for f in FEATURES]
DAY_S = 86_400


def _day():
    return inputs(trades([
        (0, "BTCUSDT", "buy", 100.0, 2.0, "a", "x"),     # a buys units 1-2 at 100
        (30, "BTCUSDT", "sell", 101.0, 1.0, "x", "a"),   # a sells unit 1 at 101 (held 30 s, win)
        (90, "BTCUSDT", "sell", 99.0, 2.0, "x", "a"),    # a sells units 2-3 at 99 (unit 2: 90 s, loss)
        (100, "BTCUSDT", "buy", 98.0, 1.0, "a", "x"),    # a buys unit 3 at 98 (sold at 99 at t=90: 10 s, win)
        (5, "ETHUSDT", "buy", 10.0, 1.0, "a", "y"),      # a: a second symbol, no round trip there
        (0, "SOLUSDT", "buy", 10.0, 3.0, "d", "y"),      # d buys 3 at 10
        (60, "SOLUSDT", "sell", 11.0, 1.0, "y", "d"),    # 1 unit: 60 s, win
        (600, "SOLUSDT", "sell", 9.0, 2.0, "y", "d"),    # 2 units: 600 s, loss
        (0, "XRPUSDT", "buy", 1.0, 1.0, "e", "y"),
        (5, "XRPUSDT", "sell", 1.0, 1.0, "y", "e"),      # e: sold at its buy price: a tie, not a win
    ]))


def test_columns_are_the_catalogue():
    assert behaviour_features(_day()).collect().columns == NAMES


def test_anonymous_tape_has_no_rows():
    day = inputs(trades([(0, "BTCUSDT", "buy", 100.0, 1.0, None, None)]))
    frame = behaviour_features(day).collect()
    assert frame.columns == NAMES and frame.height == 0


def test_holding_time_median():
    rows = {r["account_id"]: r for r in behaviour_features(_day()).collect().iter_rows(named=True)}
    # a: three 1-unit round trips held 10, 30, 90 s -> half of 3 units reached at 30 s
    assert rows["a"]["holding_time_median_s"] == 30.0
    # d: 1 unit held 60 s, 2 units held 600 s -> cumulative 1, 3 of 3: half (1.5) reached at 600 s
    #    (a per-match median would say (60 + 600) / 2 = 330)
    assert rows["d"]["holding_time_median_s"] == 600.0
    assert rows["e"]["holding_time_median_s"] == 5.0
    # x (a's counterparty) sold 2 at t=0 and 1 at t=100, bought 1 at t=30 and 2 at t=90:
    # units held |30 - 0| = 30, |90 - 0| = 90, |90 - 100| = 10 -> median 30
    assert rows["x"]["holding_time_median_s"] == 30.0
    assert rows["y"]["holding_time_median_s"] is not None
    assert behaviour_features(inputs(trades([(0, "BTCUSDT", "buy", 1.0, 1.0, "p", "q")]))).collect()[
        "holding_time_median_s"].to_list() == [None, None]  # no round trip for either side


def test_round_trip_win_rate(approx):
    rows = {r["account_id"]: r for r in behaviour_features(_day()).collect().iter_rows(named=True)}
    assert rows["a"]["round_trip_win_rate"] == approx(2 / 3)  # units 1 and 3 won, unit 2 lost
    assert rows["d"]["round_trip_win_rate"] == approx(1 / 3)  # 1 of 3 units won
    assert rows["e"]["round_trip_win_rate"] == 0.0            # tie
    # x: sold 2 @100 (t=0) + 1 @98 (t=100), bought 1 @101 (t=30) + 2 @99 (t=90); pairs (buy, sell):
    # (101, 100) loss, (99, 100) win, (99, 98) loss -> 1 / 3
    assert rows["x"]["round_trip_win_rate"] == approx(1 / 3)


def test_round_trips_split_fills_by_units():
    trips = round_trips(_day().fills).filter(pl.col("account_id") == "d").sort("sell_time").collect()
    assert trips["quantity"].to_list() == [1.0, 2.0] and trips["holding_s"].to_list() == [60.0, 600.0]


def test_round_trips_match_a_fifo_queue():
    rng = random.Random(3)
    rows = [(i * 2.0, "BTCUSDT", rng.choice(["buy", "sell"]), float(rng.randint(95, 105)),
             rng.choice([0.1, 0.2, 0.3, 0.5, 1.0]), *rng.sample(["a", "b", "c"], 2)) for i in range(300)]
    got = round_trips(inputs(trades(rows)).fills).sort("account_id", "buy_time", "sell_time").collect()
    expected = []
    for account in ("a", "b", "c"):  # FIFO by units: pop from the front of the longer queue
        queues = {1: [], -1: []}
        for s, _, _, price, qty, buyer, seller in rows:
            if account in (buyer, seller):
                queues[1 if buyer == account else -1].append([s, price, qty])
        i = j = 0
        buys, sells = queues[1], queues[-1]
        while i < len(buys) and j < len(sells):
            q = min(buys[i][2], sells[j][2])
            expected.append((account, buys[i][0], sells[j][0], round(q, 9)))
            buys[i][2] = round(buys[i][2] - q, 9)
            sells[j][2] = round(sells[j][2] - q, 9)
            i += buys[i][2] <= 1e-12
            j += sells[j][2] <= 1e-12
    expected_frame = pl.DataFrame(expected, schema=["account_id", "b", "s", "q"], orient="row").sort(
        "account_id", "b", "s")
    assert got.height == expected_frame.height
    assert [(r["account_id"], round(r["quantity"], 9)) for r in got.iter_rows(named=True)] == [
        (r["account_id"], r["q"]) for r in expected_frame.iter_rows(named=True)]


def test_symbols_traded():
    rows = {r["account_id"]: r for r in behaviour_features(_day()).collect().iter_rows(named=True)}
    assert (rows["a"]["symbols_traded"], rows["d"]["symbols_traded"], rows["y"]["symbols_traded"]) == (2, 1, 3)


def test_activity_velocity(approx):
    day_trades = trades([(s, "BTCUSDT", "buy", 100.0, 1.0, "a", "x") for s in range(5)])  # 5 fills each
    history = trades([
        (-DAY_S, "BTCUSDT", "buy", 100.0, 1.0, "a", "y"),
        (-DAY_S + 1, "BTCUSDT", "buy", 100.0, 1.0, "a", "y"),
        (-3 * DAY_S, "BTCUSDT", "buy", 100.0, 1.0, "a", "y"),
        *[(-10 * DAY_S, "BTCUSDT", "buy", 100.0, 1.0, "a", "y")] * 4,  # before the 7-day window: ignored
    ])
    rows = {r["account_id"]: r for r in behaviour_features(inputs(day_trades, history=history, lookback_days=7))
            .collect().iter_rows(named=True)}
    # history days with fills in the window: day -1 and day -3 -> a's mean = 3 / 2 = 1.5
    # a: (5 - 1.5) / (1.5 + 1) = 1.4;  x has no history: 5 / 1 = 5
    assert rows["a"]["activity_velocity"] == approx(1.4)
    assert rows["x"]["activity_velocity"] == approx(5.0)
    assert "y" not in rows  # history only: no row


def test_fills_at_one_instant_queue_in_trade_id_order():
    # a buys 1 at 100 and 1 at 102 in the same microsecond, then sells 1 at 101: the buy matched first is
    # the one whose (fill) trade id is smaller, whatever the tape's order
    for tape in ([(0, "BTCUSDT", "buy", 100.0, 1.0, "a", "x"), (0, "BTCUSDT", "buy", 102.0, 1.0, "a", "y")],
                 [(0, "BTCUSDT", "buy", 102.0, 1.0, "a", "y"), (0, "BTCUSDT", "buy", 100.0, 1.0, "a", "x")]):
        day = inputs(trades([*tape, (10, "BTCUSDT", "sell", 101.0, 1.0, "z", "a")]))
        buys = day.fills.filter((pl.col("account_id") == "a") & (pl.col("direction") == 1)).collect()
        first_price = buys.sort("trade_id")["price"][0]
        trips = round_trips(day.fills).filter(pl.col("account_id") == "a").collect()
        assert trips["buy_price"].to_list() == [first_price] and trips["quantity"].to_list() == [1.0]
        row = behaviour_features(day).filter(pl.col("account_id") == "a").collect().row(0, named=True)
        assert row["round_trip_win_rate"] == (1.0 if first_price == 100.0 else 0.0)


def test_round_trips_do_not_depend_on_the_fills_order():
    rng = random.Random(5)
    rows = [(float(rng.randint(0, 50)), rng.choice(["BTCUSDT", "ETHUSDT"]), rng.choice(["buy", "sell"]),
             float(rng.randint(95, 105)), rng.choice([0.1, 0.2, 0.5, 1.0]), *rng.sample(["a", "b", "c"], 2))
            for _ in range(200)]
    day = inputs(trades(rows))
    columns = ["account_id", "symbol", "buy_time", "sell_time", "buy_price", "sell_price", "quantity"]
    grouped = round_trips(day.fills).collect().with_columns(pl.col("quantity").round(9)).sort(columns)
    shuffled = round_trips(day.fills.collect().sample(fraction=1.0, shuffle=True, seed=1).lazy()).collect()
    assert shuffled.with_columns(pl.col("quantity").round(9)).sort(columns).equals(grouped)
    assert grouped.height > 0


def test_fill_too_small_to_move_the_rounded_quantity_shares_the_previous_end():
    # a's buys: 1 at 100 (t=0), then 1e-12 at 101 (t=5): the cumulative quantity rounds to 1 both times,
    # one end with the latest time and the highest price; the sell of 1 (t=10) matches it
    day = inputs(trades([(0, "BTCUSDT", "buy", 100.0, 1.0, "a", "x"), (5, "BTCUSDT", "buy", 101.0, 1e-12, "a", "x"),
                         (10, "BTCUSDT", "sell", 102.0, 1.0, "x", "a")]))
    trips = round_trips(day.fills).filter(pl.col("account_id") == "a").collect()
    assert trips.select("quantity", "buy_price", "sell_price", "holding_s").rows() == [(1.0, 101.0, 102.0, 5.0)]


def test_symbols_traded_and_velocity_count_every_fill():
    # zero-quantity fills match nothing but count as fills and symbols
    day = inputs(trades([(0, "BTCUSDT", "buy", 100.0, 0.0, "a", "x"), (1, "ETHUSDT", "buy", 10.0, 1.0, "a", "x"),
                         (2, "ETHUSDT", "sell", 11.0, 1.0, "x", "a")]))
    rows = {r["account_id"]: r for r in behaviour_features(day).collect().iter_rows(named=True)}
    assert (rows["a"]["symbols_traded"], rows["a"]["activity_velocity"]) == (2, 3.0)
    assert rows["a"]["holding_time_median_s"] == 1.0 and rows["a"]["round_trip_win_rate"] == 1.0


def test_numbered_pairs_are_runs_of_the_grouped_fills():
    day = _day()
    frame, pairs = numbered_pairs(day.fills, ["account_id", "symbol", "timestamp", "quantity"])
    assert frame.height == day.fills.collect().height
    assert pairs["_pair"].to_list() == list(range(1, pairs.height + 1))
    assert pairs["fills"].sum() == frame.height
    assert pairs.select(pl.struct("account_id", "symbol").is_unique().all()).item()
    # each fill's pair is its account x symbol
    joined = frame.join(pairs, on="_pair", suffix="_pair")
    assert (joined["account_id"] == joined["account_id_pair"]).all()
    assert (joined["symbol"] == joined["symbol_pair"]).all()
    # fills in another order: sorted first, into the same pairs, in time order within
    shuffled, shuffled_pairs = numbered_pairs(day.fills.collect().reverse().lazy(),
                                              ["account_id", "symbol", "timestamp", "quantity"])
    assert shuffled_pairs.height == pairs.height
    same_pair = pl.col("_pair") == pl.col("_pair").shift(1)
    assert not shuffled.select((same_pair & (pl.col("timestamp") < pl.col("timestamp").shift(1))).any()).item()
