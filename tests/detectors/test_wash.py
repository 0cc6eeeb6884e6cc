"""Wash trading: self-trade episodes and pairs handing the same quantity back and forth, on hand-made tapes."""
from __future__ import annotations

import random

import polars as pl
import pytest

from surveillance_pipeline.contract import Pattern
from surveillance_pipeline.detectors import wash
from surveillance_pipeline.detectors.base import FINDING_SCHEMA, DetectionInputs
from surveillance_pipeline.detectors.wash import (
    WashTradingSettings,
    detect_wash_trading,
)
from tests.detectors.conftest import (
    assert_episodes_found, assert_no_findings, at, detect_generated, metrics, trades_day,
)
from tests.detectors.conftest import tape as trades_tape


def tape(rows: list[tuple], symbol: str = "BTCUSDT") -> pl.DataFrame:
    """Trades from (seconds after T0, price, quantity, buyer, seller); ids t0, t1, ... in row order."""
    return trades_tape(rows, symbol, side="buy")


def detect(trades: pl.DataFrame, **settings) -> pl.DataFrame:
    return detect_wash_trading(DetectionInputs(trades=trades), WashTradingSettings(**settings))


def back_and_forth(a: str, b: str, sizes: list[float], start: float = 0.0, every_s: float = 60.0,
                   price: float = 60_000.0) -> list[tuple]:
    """a sells each size to b and b sells it straight back, at `price` give or take one 0.1 tick."""
    rows, t = [], start
    for i, size in enumerate(sizes):
        for seller, buyer in ((a, b), (b, a)):
            rows.append((t, price + 0.1 * (i % 2), size, buyer, seller))
            t += every_s
    return rows


def test_pair_trading_back_and_forth_is_one_finding():
    wash = back_and_forth("a7", "a1", [0.4] * 4)  # 8 trades, 60 s apart, within 0.1 / 60,000 = 0.02 bps
    noise = [(30 + 60 * i, 60_000.0 + i, 0.01 * (i + 1), f"r{i}", "mm") for i in range(8)]
    frame = detect(tape(sorted(wash + noise)))
    assert frame.schema == pl.Schema(FINDING_SCHEMA)
    [finding] = frame.to_dicts()
    assert finding["pattern"] == Pattern.WASH_TRADING
    assert finding["symbol"] == "BTCUSDT"
    assert finding["user_ids"] == ["a1", "a7"]
    assert finding["window_start"] == at(0) and finding["window_end"] == at(420)
    assert len(finding["evidence"]) == 8 and all(e.startswith("trade:") for e in finding["evidence"])
    m = metrics(finding)
    assert m["trades"] == 8 and m["round_trips"] == 4
    assert m["gross"] == pytest.approx(3.2) and m["net"] == pytest.approx(0.0)
    assert m["returned_share"] == pytest.approx(1.0) and m["mean_gap_bps"] == pytest.approx(0.0)
    assert m["mutual_share"] == pytest.approx(1.0)  # neither traded with anyone else
    assert m["price_range_bps"] == pytest.approx(0.1 / 60_000.05 * 10_000)
    assert 0.75 < finding["score"] <= 1.0
    assert "a1 and a7 traded BTCUSDT back and forth 8 times in 7.0 min: 4 round trips" in finding["explanation"]
    assert "net 0 (0.0%" in finding["explanation"]


def test_returning_in_pieces_and_changing_sizes_still_counts():
    # b returns a's 1.0 in two halves; the next round is 2.0, returned whole
    rows = [(0, 100.0, 1.0, "b", "a"), (20, 100.0, 0.5, "a", "b"), (40, 100.0, 0.5, "a", "b"),
            (60, 100.0, 2.0, "b", "a"), (80, 100.0, 2.0, "a", "b"),
            (100, 100.0, 1.5, "b", "a"), (120, 100.0, 1.5, "a", "b")]
    [finding] = detect(tape(rows, "SOLUSDT")).to_dicts()
    m = metrics(finding)
    # round trips 1.0 out, 0.5 + 0.5 back | 2.0 out, 2.0 back | 1.5 out, 1.5 back: every quantity returned
    assert m["trades"] == 7 and m["round_trips"] == 3 and m["returned_share"] == pytest.approx(1.0)
    assert m["gross"] == pytest.approx(9.0) and m["net_share"] == pytest.approx(0.0)


def rounds(a: str, b: str, sizes: list[float], first: str, start: float = 0.0, leg_s: float = 40.0,
           round_s: float = 120.0, price: float = 100.0) -> list[tuple]:
    """One round per size: the account named in `first` ("a"/"b", one letter a round) delivers the size to the
    other, who hands it back `leg_s` later; prices one 0.01 tick apart from round to round."""
    rows, t = [], start
    for i, (size, who) in enumerate(zip(sizes, first, strict=True)):
        giver, taker = (a, b) if who == "a" else (b, a)
        p = price + 0.01 * (i % 3)
        rows += [(t, p, size, taker, giver), (t + leg_s, p, size, giver, taker)]
        t += leg_s + round_s
    return rows


def test_either_account_delivering_first_with_sizes_changing_from_round_to_round_fires():
    # A->B, B->A, B->A, A->B, ...: merged into runs one way, no run returns the previous one's quantity, but the
    # pair's mutual position comes back to flat after every round
    rows = rounds("a", "b", [0.7, 1.3, 0.4, 2.1, 0.9, 1.6], first="abbaba")
    [finding] = detect(tape(rows)).to_dicts()
    m = metrics(finding)
    assert finding["user_ids"] == ["a", "b"]
    assert m["trades"] == 12 and m["round_trips"] == 6 and m["returned_share"] == pytest.approx(1.0)
    assert m["net"] == pytest.approx(0.0) and m["largest_open"] == pytest.approx(2.1)
    assert finding["score"] > 0.8


def test_two_round_trips_fire_one_does_not():
    assert detect(tape(rounds("a", "b", [1.0, 3.0], first="ba"))).height == 1
    assert detect(tape(rounds("a", "b", [1.0], first="a"))).height == 0


def test_returns_ten_minutes_and_more_apart_stay_one_episode():
    # a slow pair: each quantity comes back after 12 min, the next round 15 min later
    rows = rounds("a", "b", [5.0, 5.0, 5.0], first="aaa", leg_s=720, round_s=900)
    [finding] = detect(tape(rows)).to_dicts()
    assert metrics(finding)["round_trips"] == 3
    assert (finding["window_start"], finding["window_end"]) == (at(0), at(3_960))
    assert detect(tape(rows), episode_gap_s=600).height == 0  # cut at every leg: nothing comes back within a gap


def test_quantities_coming_back_at_prices_apart_carry_risk():
    rows = rounds("a", "b", [1.0] * 4, first="abab")
    apart = [(t, p * (1 + 0.003 * (i % 2)), q, buyer, seller) for i, (t, p, q, buyer, seller) in enumerate(rows)]
    assert detect(tape(apart)).height == 0  # every return 30 bps from its price out
    assert metrics(detect(tape(apart), price_tolerance_bps=40).to_dicts()[0])["mean_gap_bps"] == \
        pytest.approx(30, rel=0.01)


def market_maker_day(seconds: float, every_s: float = 20.0) -> list[tuple]:
    """A market maker `mm` trading with 40 other accounts both ways every `every_s`, varying sizes."""
    return [(3 + every_s * i, 100.0 + 0.02 * (i % 7), 0.2 + 0.1 * (i % 9), *(("mm", f"r{i % 40}") if i % 3
                                                                          else (f"r{i % 40}", "mm")))
            for i in range(int(seconds / every_s))]


def test_fixed_clip_taker_meeting_one_market_maker_is_not_wash():
    # an algorithm takes liquidity in one 0.5 clip, buying or selling as its signal says; most of the time the
    # market maker at the touch fills it. A stretch of its trades happens to alternate: 4 same-size trades with
    # the maker within 10 min, two round trips at the touch
    rng = random.Random(7)
    algo = [(60.0 * i + 1, 100.0 + (0.01 if buy else 0.0), 0.5, *(("algo", "mm") if buy else ("mm", "algo")))
            for i, buy in enumerate([True, False, True, False] + [rng.random() < 0.5 for _ in range(116)])]
    others = [(60.0 * i + 31, 100.0, 0.5, *(("algo", f"s{i}") if i % 2 else (f"s{i}", "algo"))) for i in range(30)]
    rows = sorted(algo + others + market_maker_day(7_200))
    assert detect(tape(rows)).height == 0
    # the maker's flow with everyone else is what keeps the short alternating stretch quiet ...
    short = sorted(algo[:4] + market_maker_day(600))
    assert detect(tape(short)).height == 0
    [finding] = detect(tape(short), pair_min_mutual_share=0.0).to_dicts()
    assert metrics(finding)["mutual_share"] < 0.2
    # ... and over the whole session the pair's position wanders: few of its trades come back in round trips
    [cluster] = wash._pair_clusters(with_ts(tape(rows)), WashTradingSettings()).filter(
        pl.col("account_a") == "algo").to_dicts()
    assert cluster["returned_share"] < 0.6
    assert detect(tape(rows), pair_min_mutual_share=0.0).height == 0


def with_ts(trades: pl.DataFrame) -> pl.DataFrame:
    return trades.with_columns(pl.col("timestamp").dt.epoch("us").alias("ts_us"))


def test_pair_trading_mostly_with_others_is_not_wash():
    # two round trips between a and b, each of them trading ten times as much with the rest of the market
    rows = rounds("a", "b", [1.0, 1.0], first="ab") + [
        (10 * i, 100.0, 1.0, *(("a", f"x{i}") if i % 2 else (f"x{i}", "b"))) for i in range(40)]
    assert detect(tape(sorted(rows))).height == 0
    assert detect(tape(sorted(rows)), pair_min_mutual_share=0.0).height == 1


def test_a_long_pause_splits_the_episodes():
    rows = back_and_forth("a", "b", [1.0, 1.0]) + back_and_forth("a", "b", [1.0, 1.0], start=3_600)
    frame = detect(tape(rows))
    assert frame.height == 2
    assert frame["window_start"].to_list() == [at(0), at(3_600)]
    assert detect(tape(rows), episode_gap_s=7_200).height == 1


def test_self_trades_are_grouped_into_episodes():
    rows = ([(30 * i, 150.0, 2.0, "s", "s") for i in range(3)]  # 3 self-trades within a minute
            + [(3_600 + 30 * i, 151.0, 1.0, "s", "s") for i in range(2)]  # 2 more an hour later
            + [(10_000, 150.0, 1.0, "s", "s")]  # an isolated one: not a pattern
            + [(15, 150.0, 2.0, "x", "s"), (45, 150.0, 2.0, "s", "x")])  # one round trip with x: not enough
    frame = detect(tape(rows, "SOLUSDT"))
    assert frame["user_ids"].to_list() == [["s"], ["s"]]
    first, second = frame.to_dicts()
    assert (first["window_start"], first["window_end"]) == (at(0), at(60))
    assert first["evidence"] == ["trade:t0", "trade:t1", "trade:t2"]
    assert metrics(first)["self_trades"] == 3 and metrics(first)["quantity"] == pytest.approx(6.0)
    assert first["score"] == pytest.approx(3 / 4)
    assert metrics(second)["self_trades"] == 2 and second["window_start"] == at(3_600)
    assert "s traded SOLUSDT with itself 3 times in 60 s" in first["explanation"]
    assert detect(tape(rows, "SOLUSDT"), self_trade_min_count=1).height == 3


def test_market_maker_and_busy_client_meeting_at_moving_prices_is_not_wash():
    # the client buys from the market maker again and again as the price climbs, in varying sizes, selling a
    # little back now and then: a position building one way, not a return of the same quantity at one price
    sizes = [0.5, 0.8, 0.3, 0.5, 1.1, 0.6, 0.5, 0.9, 0.4, 0.7, 0.5, 1.0]
    rows = [(40 * i, 100.0 * (1 + 0.0015 * i), q, "client", "mm") for i, q in enumerate(sizes)]
    rows += [(40 * i + 20, 100.0 * (1 + 0.0015 * i), 0.5, "mm", "client") for i in (0, 3, 6, 9)]
    assert detect(tape(sorted(rows))).height == 0


def test_same_size_back_and_forth_at_prices_far_apart_is_not_wash():
    # scalping against one market maker as the market swings 30 bps between fills: a real change of risk
    rows = [(60 * i, 100.0 * (1 + 0.003 * (i % 2)), 1.0, *(("c", "mm") if i % 2 == 0 else ("mm", "c")))
            for i in range(10)]
    assert detect(tape(rows)).height == 0
    assert detect(tape(rows), price_tolerance_bps=50).height == 1  # the price test is what keeps it quiet


def test_market_maker_buying_and_selling_with_many_counterparties_is_not_wash():
    rows = [(10 * i, 60_000.0, 0.5, *(("mm", f"r{i}") if i % 2 else (f"r{i}", "mm"))) for i in range(40)]
    assert detect(tape(rows)).height == 0


def test_a_ring_is_not_pair_wash():
    hops = [("a", "b"), ("b", "c"), ("c", "a")] * 3
    rows = [(30 * i, 100.0, 1.0, buyer, seller) for i, (seller, buyer) in enumerate(hops)]
    assert detect(tape(rows)).height == 0


def test_anonymous_tape_and_disabled_detector_give_no_findings():
    anonymous = tape([(10 * i, 100.0, 1.0, None, None) for i in range(10)])
    assert detect(anonymous).height == 0
    assert detect(anonymous).schema == pl.Schema(FINDING_SCHEMA)
    assert detect(tape(back_and_forth("a", "b", [1.0] * 4)), enabled=False).height == 0


def test_settings_reject_out_of_range_values():
    with pytest.raises(ValueError):
        WashTradingSettings(quantity_tolerance=1.5)
    with pytest.raises(ValueError):
        WashTradingSettings(unknown_threshold=1)


# -- generated scenarios -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_day_wash_episodes_are_found_once(seed):
    findings, labels = detect_generated(detect_wash_trading, WashTradingSettings(), trades_day(seed))
    assert_episodes_found(findings, labels, Pattern.WASH_TRADING, min_episodes=2)  # a self-trader and a pair


def test_generated_clean_day_gives_no_findings():
    assert_no_findings(*detect_generated(detect_wash_trading, WashTradingSettings(), trades_day(4, clean=True)))
