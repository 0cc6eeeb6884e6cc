"""Market features on tiny hand-made tapes (every expected number worked out by hand), the real pump tapes."""
from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from surveillance_pipeline.contract import TRADE_SCHEMA
from surveillance_pipeline.features.base import FeatureInputs
from surveillance_pipeline.features.market import BARS, MARKET_FEATURES, market_features
from surveillance_pipeline.ingest.importer import ImportOptions, iter_validated, make_context, prepare_source
from tests.features.conftest import DAY, T0, at, inputs, orders, trades

ROOT = Path(__file__).resolve().parents[2]
PUMP_SLICES = sorted((ROOT / "tests/fixtures/pumps").glob("*.csv.gz"))
PUMPS_DEV = ROOT.parent / "shared/data/pumps_dev"
ACCOUNT_COLUMNS = ["buyer_id", "seller_id", "buyer_order_id", "seller_order_id"]


def _tape() -> pl.DataFrame:
    """AAA: seven trades over two hours; BBB: one trade inside AAA's first second."""
    tape = trades([
        (0.1, "AAA", "buy", 100.0, 1.0, "a", "b"),     # 0  1s bar 10:00:00
        (0.1, "AAA", "buy", 101.0, 2.0, "a", "c"),     # 1  same instant: input order kept
        (0.5, "AAA", "sell", 100.0, 1.0, "c", "a"),    # 2
        (1.2, "AAA", "buy", 102.0, 3.0, "b", "c"),     # 3  1s bar 10:00:01
        (2.5, "AAA", "sell", 101.0, 1.0, "c", "b"),    # 4  1s bar 10:00:02 (quote_quantity missing below)
        (61.0, "AAA", "sell", 99.0, 2.0, "d", "a"),    # 5  1m bar 10:01
        (3605.0, "AAA", "buy", 101.0, 1.0, "a", "b"),  # 6  1h bar 11:00
        (0.3, "BBB", "sell", 50.0, 4.0, "x", "y"),
    ])
    return tape.with_columns(
        pl.when(pl.col("trade_id") == "t4").then(None).otherwise(pl.col("quote_quantity")).alias("quote_quantity"))


def _features(day_trades: pl.DataFrame, day_orders: pl.DataFrame | None = None, **settings) -> pl.DataFrame:
    return market_features(inputs(day_trades, day_orders, **settings)).collect()


def _bar(frame: pl.DataFrame, symbol: str, bar: str, seconds: float) -> dict:
    rows = frame.filter((pl.col("symbol") == symbol) & (pl.col("bar") == bar) & (pl.col("bar_start") == at(seconds)))
    assert rows.height == 1, f"no single {bar} bar of {symbol} at {at(seconds)}"
    return rows.row(0, named=True)


def _values(frame: pl.DataFrame, symbol: str, bar: str, column: str) -> list:
    return frame.filter((pl.col("symbol") == symbol) & (pl.col("bar") == bar))[column].to_list()


def test_columns_are_the_catalogue():
    frame = _features(_tape())
    assert frame.columns == ["symbol", "bar", "bar_start"] + [f.name for f in MARKET_FEATURES]
    assert frame.schema["bar_start"] == pl.Datetime("us", "UTC")


def test_bars_are_emitted_only_where_there_are_trades():
    frame = _features(_tape())
    assert _values(frame, "AAA", "1s", "bar_start") == [at(0), at(1), at(2), at(61), at(3605)]
    assert _values(frame, "AAA", "1m", "bar_start") == [at(0), at(60), at(3600)]
    assert _values(frame, "AAA", "1h", "bar_start") == [at(0), at(3600)]
    assert _values(frame, "BBB", "1s", "bar_start") == [at(0)]


def test_trades():
    frame = _features(_tape())
    assert _values(frame, "AAA", "1s", "trades") == [3, 1, 1, 1, 1]
    assert _values(frame, "AAA", "1m", "trades") == [5, 1, 1]
    assert _values(frame, "AAA", "1h", "trades") == [6, 1]
    assert _values(frame, "BBB", "1h", "trades") == [1]  # symbols never mix


def test_volume(approx):
    frame = _features(_tape())
    assert _bar(frame, "AAA", "1s", 0)["volume"] == approx(4.0)      # 1 + 2 + 1
    assert _bar(frame, "AAA", "1m", 0)["volume"] == approx(8.0)      # 4 + 3 + 1
    assert _bar(frame, "AAA", "1h", 0)["volume"] == approx(10.0)     # 8 + 2


def test_notional(approx):
    frame = _features(_tape())
    assert _bar(frame, "AAA", "1s", 0)["notional"] == approx(402.0)  # 100*1 + 101*2 + 100*1
    assert _bar(frame, "AAA", "1s", 2)["notional"] == approx(101.0)  # quote_quantity missing: 101 * 1
    assert _bar(frame, "AAA", "1m", 0)["notional"] == approx(809.0)  # 402 + 102*3 + 101
    assert _bar(frame, "AAA", "1h", 0)["notional"] == approx(1007.0)  # 809 + 99*2


def test_buy_share(approx):
    frame = _features(_tape())
    assert _bar(frame, "AAA", "1s", 0)["buy_share"] == approx(0.75)  # (1 + 2) / 4
    assert _bar(frame, "AAA", "1s", 2)["buy_share"] == approx(0.0)   # a sell only
    assert _bar(frame, "AAA", "1m", 0)["buy_share"] == approx(0.75)  # (1 + 2 + 3) / 8
    assert _bar(frame, "AAA", "1h", 0)["buy_share"] == approx(0.6)   # 6 / (8 + 2)


def test_open():
    frame = _features(_tape())
    assert _values(frame, "AAA", "1s", "open") == [100.0, 102.0, 101.0, 99.0, 101.0]  # t0 before t1 (same µs)
    assert _values(frame, "AAA", "1h", "open") == [100.0, 101.0]


def test_high():
    frame = _features(_tape())
    assert _values(frame, "AAA", "1s", "high")[0] == 101.0
    assert _values(frame, "AAA", "1m", "high") == [102.0, 99.0, 101.0]
    assert _values(frame, "AAA", "1h", "high") == [102.0, 101.0]


def test_low():
    frame = _features(_tape())
    assert _values(frame, "AAA", "1s", "low")[0] == 100.0
    assert _values(frame, "AAA", "1m", "low") == [100.0, 99.0, 101.0]
    assert _values(frame, "AAA", "1h", "low") == [99.0, 101.0]


def test_close():
    frame = _features(_tape())
    assert _values(frame, "AAA", "1s", "close") == [100.0, 102.0, 101.0, 99.0, 101.0]
    assert _values(frame, "AAA", "1m", "close") == [101.0, 99.0, 101.0]
    assert _values(frame, "AAA", "1h", "close") == [99.0, 101.0]


def test_return_log(approx):
    frame = _features(_tape())
    one_second = _values(frame, "AAA", "1s", "return_log")
    assert one_second[0] is None                                # the first bar of the day
    assert one_second[1:] == [approx(0.01980262729617973),      # ln(102 / 100)
                              approx(-0.009852296443011594),    # ln(101 / 102)
                              approx(-0.020000666706669543),    # ln(99 / 101)
                              approx(0.020000666706669435)]     # ln(101 / 99)
    assert _values(frame, "AAA", "1m", "return_log") == [None, approx(-0.020000666706669543),  # ln(99 / 101)
                                                         approx(0.020000666706669435)]        # ln(101 / 99)
    assert _values(frame, "AAA", "1h", "return_log") == [None, approx(0.020000666706669435)]  # ln(101 / 99)
    assert _values(frame, "BBB", "1s", "return_log") == [None]  # not chained to AAA's close


def test_realised_vol(approx):
    frame = _features(_tape())
    # 1s: trade-to-trade returns ending in the second: ln(101/100), ln(100/101) -> sqrt(2) * ln(1.01)
    assert _bar(frame, "AAA", "1s", 0)["realised_vol"] == approx(0.014071892842649767)
    # a lone trade: its return from the previous trade, |ln(102/100)|
    assert _bar(frame, "AAA", "1s", 1)["realised_vol"] == approx(0.01980262729617973)
    # 1m: the 1s bars' returns in the minute: null, ln(102/100), ln(101/102) -> sqrt(0.0198026^2 + 0.0098523^2)
    assert _bar(frame, "AAA", "1m", 0)["realised_vol"] == approx(0.02211813267507864)
    # 1h: the 1m bars' returns in the hour: null, ln(99/101) -> 0.0200007
    assert _bar(frame, "AAA", "1h", 0)["realised_vol"] == approx(0.020000666706669543)
    assert _bar(frame, "AAA", "1h", 3600)["realised_vol"] == approx(0.020000666706669435)  # ln(101/99)
    assert _bar(frame, "BBB", "1s", 0)["realised_vol"] is None  # one trade, no return at all


def test_distinct_buyers():
    frame = _features(_tape())
    assert _bar(frame, "AAA", "1s", 0)["distinct_buyers"] == 2   # a, a, c
    assert _bar(frame, "AAA", "1m", 0)["distinct_buyers"] == 3   # a, a, c, b, c
    assert _bar(frame, "AAA", "1h", 0)["distinct_buyers"] == 4   # ... and d
    mixed = trades([(0.1, "AAA", "buy", 100.0, 1.0, "a", "b"), (0.2, "AAA", "buy", 100.0, 1.0, None, "b"),
                    (5.0, "AAA", "buy", 100.0, 1.0, None, "b")])
    frame = _features(mixed)
    assert _bar(frame, "AAA", "1s", 0)["distinct_buyers"] == 1   # a; the missing id is not a buyer
    assert _bar(frame, "AAA", "1s", 5)["distinct_buyers"] is None  # no buyer id in the bar


def _rush_tape() -> pl.DataFrame:
    rows = [  # (seconds, taker side, buyer order id)
        (0.1000, "buy", None), (0.1004, "buy", None),  # one 1 ms window -> rush order 1 (10:00:00)
        (0.1000, "sell", None),                        # sells never count
        (0.2000, "buy", "B1"), (0.2500, "buy", "B1"),  # one buyer order, two trades -> rush order 2
        (0.3000, "buy", "B2"), (0.3000, "buy", "B3"),  # same instant, two orders of one trade each: none
        (1.5, "buy", None), (1.5, "buy", None), (1.5, "buy", None),  # three trades, one window -> rush 3
        (2.101, "buy", None), (2.108, "buy", None),    # 7 ms apart: a rush only with a 10 ms window
    ]
    tape = trades([(s, "AAA", side, 100.0, 1.0, "a", "b") for s, side, _ in rows])
    return tape.with_columns(pl.Series("buyer_order_id", [order for _, _, order in rows], pl.String))


def test_rush_orders():
    frame = _features(_rush_tape())
    assert _values(frame, "AAA", "1s", "rush_orders") == [2, 1, 0]  # 10:00:00, :01, :02
    assert _values(frame, "AAA", "1m", "rush_orders") == [3]
    assert _values(frame, "AAA", "1h", "rush_orders") == [3]
    wide = _features(_rush_tape(), rush_window_ms=10)  # 2.101 and 2.108 share the window [2.100, 2.110)
    assert _values(wide, "AAA", "1s", "rush_orders") == [2, 1, 1]
    assert _values(wide, "AAA", "1h", "rush_orders") == [4]


def test_spread_roll_from_trades(approx):
    # AAA has no order events: Roll's estimator in every bar size
    tape = trades([(0.5, "AAA", "buy", 50.0, 1.0, "a", "b")]
                  + [(1.0 + i / 10, "AAA", "buy", p, 1.0, "a", "b") for i, p in enumerate([100.0, 102.0, 100.0, 102.0])]
                  + [(5.0 + i / 10, "AAA", "buy", p, 1.0, "a", "b") for i, p in enumerate([100.0, 101.0, 102.0])])
    frame = _features(tape)
    # 1s bar 10:00:01, prices 100 102 100 102 (the 50 before the bar is not used): dp = 2, -2, 2;
    # pairs (dp_t, dp_t-1) = (-2, 2), (2, -2): means 0, cov = (-4 - 4) / (2 - 1) = -8;
    # 2 sqrt(8) = 5.656854 over the mean price 101 -> 560.08458 bps
    assert _bar(frame, "AAA", "1s", 1)["spread_bps"] == approx(560.0845791576614)
    assert _bar(frame, "AAA", "1s", 0)["spread_bps"] is None  # one trade
    assert _bar(frame, "AAA", "1s", 5)["spread_bps"] is None  # three trades: one pair only
    # 1m bar, prices 50 100 102 100 102 100 101 102: dp = 50 2 -2 2 -2 1 1, pairs (x=dp_t, y=dp_t-1):
    # (2,50) (-2,2) (2,-2) (-2,2) (1,-2) (1,1): sums x=2, y=51, xy=100-4-4-4-2+1=87, n=6
    # cov = (87 - 2*51/6) / 5 = (87 - 17) / 5 = 14 >= 0 -> null
    assert _bar(frame, "AAA", "1m", 0)["spread_bps"] is None


def _book_orders() -> pl.DataFrame:
    return orders([
        (0.0, "o1", "m", "AAA", "buy", 99.0, 1.0, "new"),          # bid 99, never cancelled
        (10.0, "o2", "m", "AAA", "buy", 99.5, 1.0, "new"),         # bid 99.5 for 20 s, inside the minute
        (30.0, "o2", "m", "AAA", "buy", None, None, "cancel"),
        (5.0, "o3", "n", "AAA", "sell", 101.0, 1.0, "new"),        # ask 101 until 10:01:30
        (90.0, "o3", "n", "AAA", "sell", None, None, "cancel"),
        (20.0, "o4", "n", "AAA", "sell", 100.8, 1.0, "new"),       # ask 100.8, cancelled exactly at 10:01:00:
        (60.0, "o4", "n", "AAA", "sell", None, None, "cancel"),    # still live at the end of the 10:00 bar
        (40.0, "o5", "k", "AAA", "buy", 100.9, 1.0, "new"),        # a market order: never rests
        (60.0, "o6", "n", "AAA", "sell", 100.1, 1.0, "new"),       # ask 100.1 placed exactly at 10:01:00:
        (200.0, "o6", "n", "AAA", "sell", None, None, "cancel"),   # not live at the end of the 10:00 bar
        (3000.0, "o7", "n", "AAA", "sell", 105.0, 1.0, "new"),     # ask 105 from 10:50, never cancelled
        (3600.0, "o8", "n", "AAA", "sell", 104.0, 1.0, "new"),     # placed exactly at 11:00:00
        (0.0, "o9", "m", "CCC", "buy", 1.0, 1.0, "new"),           # a symbol without trades
    ]).with_columns(pl.when(pl.col("order_id") == "o5").then(pl.lit("market")).otherwise(pl.col("order_type"))
                    .alias("order_type"))


def _book_tape() -> pl.DataFrame:
    return trades([(30.0, "AAA", "buy", 101.0, 1.0, "a", "b"), (61.0, "AAA", "sell", 99.0, 1.0, "c", "d"),
                   (30.0, "BBB", "buy", 10.0, 1.0, "a", "b")])


def test_spread_from_order_events(approx):
    frame = _features(_book_tape(), _book_orders())
    # end of the 10:00 minute: bids o1 99 (o2 gone, o5 a market order); asks o3 101, o4 100.8 (o6 not yet)
    # -> (100.8 - 99) / 99.9 x 10 000 = 180.18 bps
    assert _bar(frame, "AAA", "1m", 0)["spread_bps"] == approx(180.18018018018017)
    # 10:02: o3 and o4 cancelled; bid o1 99, ask o6 100.1 -> 1.1 / 99.55 x 10 000 = 110.50 bps
    assert _bar(frame, "AAA", "1m", 60)["spread_bps"] == approx(110.4972375690608)
    # end of the 10:00 hour: bid o1 99, ask o7 105 (o8 not yet) -> 6 / 102 x 10 000 = 588.24 bps
    assert _bar(frame, "AAA", "1h", 0)["spread_bps"] == approx(588.2352941176471)
    assert _bar(frame, "AAA", "1s", 30)["spread_bps"] is None  # 1s bars: Roll's, one trade
    assert _bar(frame, "BBB", "1m", 0)["spread_bps"] is None   # no orders: Roll's, one trade


def test_spread_follows_modify_and_ignores_crossed_books(approx):
    extra = orders([
        (0.0, "p1", "m", "AAA", "buy", 98.0, 1.0, "new"),
        (50.0, "p1", "m", "AAA", "buy", 99.8, 1.0, "modify"),     # bid 99.8 from 10:00:50
        (100.0, "p1", "m", "AAA", "buy", None, None, "cancel"),
        (110.0, "p1", "m", "AAA", "buy", 110.0, 1.0, "modify"),   # after the cancel: ignored
        (3500.0, "p2", "m", "AAA", "buy", 106.0, 1.0, "new"),     # bid above the 105 ask: crossed
    ])
    frame = _features(_book_tape(), pl.concat([_book_orders(), extra]))
    # 10:01:00: bid p1 99.8, ask o4 100.8 -> 1 / 100.3 x 10 000 = 99.70 bps
    assert _bar(frame, "AAA", "1m", 0)["spread_bps"] == approx(99.70089730807577)
    # 10:02:00: p1 cancelled at 10:01:40 (its later modify ignored): bid o1 99, ask o6 100.1 -> 110.50 bps
    assert _bar(frame, "AAA", "1m", 60)["spread_bps"] == approx(110.4972375690608)
    assert _bar(frame, "AAA", "1h", 0)["spread_bps"] is None   # bid 106 >= ask 105


def test_anonymous_tape_gets_every_feature_but_distinct_buyers():
    identified = _features(_tape())
    anonymous = _features(_tape().with_columns(pl.lit(None, pl.String).alias(c) for c in ACCOUNT_COLUMNS))
    assert anonymous["distinct_buyers"].null_count() == anonymous.height
    assert identified["distinct_buyers"].null_count() == 0
    same = [c for c in anonymous.columns if c not in ("distinct_buyers", "rush_orders")]
    assert anonymous.select(same).equals(identified.select(same))
    # without order ids the rush orders come from the time windows: t0 and t1 share 10:00:00.100
    assert _values(anonymous, "AAA", "1s", "rush_orders") == [1, 0, 0, 0, 0]
    assert _values(identified, "AAA", "1s", "rush_orders") == [0, 0, 0, 0, 0]  # one trade per buyer order


def test_empty_day():
    frame = market_features(inputs(pl.DataFrame(schema=TRADE_SCHEMA))).collect()
    assert frame.height == 0
    assert frame.columns == ["symbol", "bar", "bar_start"] + [f.name for f in MARKET_FEATURES]


def _load_tape(path: Path) -> pl.DataFrame:
    prepared = prepare_source(path, ImportOptions())
    ctx = make_context(prepared.generate_trade_ids, datetime(2009, 1, 3, tzinfo=timezone.utc), 86400)
    accepted = [frame.drop("__line") for _, frame, _ in iter_validated(prepared, ctx, 10_000)]
    return pl.concat(accepted)


@pytest.mark.parametrize("path", PUMP_SLICES, ids=lambda p: p.name.split(".csv")[0])
def test_pump_tape_slices_get_market_features(path: Path):
    tape = _load_tape(path)
    assert tape.height > 0 and tape["buyer_id"].null_count() == tape.height  # anonymous
    frame = market_features(FeatureInputs(day=tape["timestamp"].min().date(), trades=tape.lazy())).collect()
    assert sorted(frame["bar"].unique().to_list()) == ["1h", "1m", "1s"]
    for bar in ("1s", "1m", "1h"):
        bars = frame.filter(pl.col("bar") == bar)
        assert bars.height > 0 and bars["trades"].min() > 0
        assert bars["buy_share"].null_count() == 0
        assert bars["trades"].sum() == tape.height
    assert frame["distinct_buyers"].null_count() == frame.height


@pytest.mark.slow
def test_full_pump_tape_peaks_at_the_pump():
    """Sanity check of the signal on one whole 19-day tape (not a detector): the hour with the most rush
    orders and the hour with the most volume both lie within 2 hours of the hand-labelled pump start."""
    name = "CVC_2019-08-13_20.00.csv.gz"
    if not (PUMPS_DEV / name).exists():
        pytest.skip(f"{PUMPS_DEV / name} is absent")
    pumps = pl.read_csv(PUMPS_DEV / "pumps.csv").filter(
        (pl.col("file") == name) & pl.col("source").str.starts_with("hand-labelled"))
    pump = datetime.fromisoformat(pumps["pump_time"][0])
    tape = _load_tape(PUMPS_DEV / name)
    hours = market_features(FeatureInputs(day=pump.date(), trades=tape.lazy())).collect().filter(
        pl.col("bar") == "1h")
    for feature in ("rush_orders", "volume"):
        peak = hours.sort(feature, descending=True, maintain_order=True)["bar_start"][0]
        assert abs(peak - pump) <= timedelta(hours=2), f"{feature} peaks at {peak}, the pump is at {pump}"


def _synthetic_tape(n: int, symbols: int = 20, seed: int = 7) -> pl.DataFrame:
    """n trades over the day: random-walk prices, 5% of them in same-millisecond bursts, 500 buyers."""
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 86_400_000_000, n))
    burst = rng.random(n) < 0.05
    ts[1:][burst[1:]] = ts[:-1][burst[1:]]
    sym = rng.integers(0, symbols, n)
    price = 100.0 * np.exp(np.cumsum(rng.normal(0, 1e-4, n)))
    buyer = rng.integers(0, 500, n)
    frame = pl.DataFrame({
        "trade_id": pl.int_range(n, eager=True).cast(pl.String),
        "timestamp": (pl.Series(ts) + int(T0.replace(hour=0).timestamp() * 1_000_000)).cast(pl.Datetime("us", "UTC")),
        "symbol": pl.Series([f"S{i:02d}" for i in range(symbols)]).gather(sym),
        "side": np.where(rng.random(n) < 0.5, "buy", "sell"),
        "price": price, "quantity": rng.exponential(1.0, n),
        "buyer_id": pl.Series([f"acct_{i:04d}" for i in range(500)]).gather(buyer),
    })
    return frame.with_columns(pl.lit(None, pl.String).alias(c) for c in ("seller_id", "buyer_order_id",
                              "seller_order_id")).with_columns(
        pl.lit("spot").alias("market_type"), (pl.col("price") * pl.col("quantity")).alias("quote_quantity"),
        pl.lit(0.0).alias("fee")).select(list(TRADE_SCHEMA)).cast(TRADE_SCHEMA)


@pytest.mark.slow
def test_timing_on_a_synthetic_million_trade_day(capsys):
    tape = _synthetic_tape(1_000_000)
    assert tape["timestamp"].min() >= datetime.combine(DAY, datetime.min.time(), tzinfo=timezone.utc)
    wall, cpu = time.perf_counter(), time.process_time()
    frame = market_features(FeatureInputs(day=DAY, trades=tape.lazy())).collect()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    with capsys.disabled():
        print(f"\nmarket_features: 1,000,000 trades -> {frame.height:,} bars in {wall:.2f} s wall, {cpu:.2f} s CPU")
    assert frame.filter(pl.col("bar") == "1h")["trades"].sum() == tape.height


def test_spread_of_a_symbol_with_orders_but_no_resting_order_is_null():
    tape = trades([(1.0 + i / 10, "AAA", "buy", p, 1.0, "a", "b") for i, p in enumerate([100.0, 102.0, 100.0, 102.0])])
    only_market = orders([(0.5, "o1", "k", "AAA", "buy", None, 1.0, "new")]).with_columns(
        pl.lit("market").alias("order_type"))
    frame = _features(tape, only_market)
    assert _bar(frame, "AAA", "1m", 0)["spread_bps"] is None  # the book is empty, Roll's is not used
    assert _bar(frame, "AAA", "1s", 1)["spread_bps"] is not None  # 1s bars: Roll's


def test_spread_keeps_the_best_open_order_placed_in_any_earlier_minute(approx):
    tape = trades([(30.0, "AAA", "buy", 100.0, 1.0, "a", "b"), (330.0, "AAA", "buy", 100.0, 1.0, "a", "b"),
                   (630.0, "AAA", "buy", 100.0, 1.0, "a", "b")])  # 1m bars 10:00, 10:05, 10:10
    book = orders([
        (10.0, "q1", "m", "AAA", "buy", 99.0, 1.0, "new"),      # open bids and asks, never cancelled
        (20.0, "q2", "n", "AAA", "sell", 101.0, 1.0, "new"),
        (150.0, "q3", "m", "AAA", "buy", 99.5, 1.0, "new"),     # placed in 10:02, a minute without trades
        (360.0, "q4", "n", "AAA", "sell", 100.5, 1.0, "new"),   # placed exactly at 10:06, the 10:05 bar's end
        (420.0, "q5", "m", "AAA", "buy", 98.0, 1.0, "new"),     # worse than the best bid: no change
        (240.0, "q6", "n", "AAA", "sell", 100.2, 1.0, "new"),   # a finite ask, 10:04 to 10:09
        (540.0, "q6", "n", "AAA", "sell", None, None, "cancel"),
    ])
    frame = _features(tape, book)
    assert _bar(frame, "AAA", "1m", 0)["spread_bps"] == approx(2 / 100 * 10_000)          # 99 / 101
    assert _bar(frame, "AAA", "1m", 300)["spread_bps"] == approx(0.7 / 99.85 * 10_000)    # 99.5 / 100.2
    assert _bar(frame, "AAA", "1m", 600)["spread_bps"] == approx(1 / 100 * 10_000)        # 99.5 / 100.5
    assert _bar(frame, "AAA", "1h", 0)["spread_bps"] == approx(1 / 100 * 10_000)


def test_coarser_bars_add_up_their_finer_bars(approx):
    tape = _synthetic_tape(20_000, symbols=3, seed=11)
    frame = market_features(FeatureInputs(day=DAY, trades=tape.lazy())).collect()
    trades_by_symbol = tape.sort("symbol", "timestamp", maintain_order=True).group_by("symbol").agg(
        pl.col("price").max().alias("high"), pl.col("price").min().alias("low"),
        pl.col("quantity").sum().alias("volume"), pl.col("price").first().alias("open"),
        pl.col("price").last().alias("close"), pl.len().alias("trades"))
    for bar in ("1s", "1m", "1h"):
        day = frame.filter(pl.col("bar") == bar).group_by("symbol").agg(
            pl.col("high").max(), pl.col("low").min(), pl.col("volume").sum(), pl.col("open").first(),
            pl.col("close").last(), pl.col("trades").sum())
        joined = day.join(trades_by_symbol, on="symbol", suffix="_tape")
        assert joined.height == 3
        for column in ("high", "low", "open", "close", "trades"):
            assert (joined[column] == joined[f"{column}_tape"]).all(), (bar, column)
        assert joined["volume"].to_list() == [approx(v) for v in joined["volume_tape"].to_list()]
    # a bar's squared realised vol sums its finer bars' squared returns: over the day, the same total
    for finer, coarser in itertools.pairwise(BARS):
        returns = frame.filter(pl.col("bar") == finer).select((pl.col("return_log") ** 2).sum()).item()
        realised = frame.filter(pl.col("bar") == coarser).select((pl.col("realised_vol") ** 2).sum()).item()
        assert realised == approx(returns)
