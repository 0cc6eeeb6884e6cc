"""Wash trading: self-trade episodes and pairs handing the same quantity back and forth, on hand-made tapes."""
from __future__ import annotations

import polars as pl
import pytest

from surveillance_pipeline.contract import Pattern
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
    assert m["trades"] == 8 and m["reversals"] == 7
    assert m["gross"] == pytest.approx(3.2) and m["net"] == pytest.approx(0.0)
    assert m["returned_share"] == pytest.approx(1.0)
    assert m["price_range_bps"] == pytest.approx(0.1 / 60_000.05 * 10_000)
    assert 0.8 < finding["score"] <= 1.0
    assert "a1 and a7 traded BTCUSDT back and forth 8 times in 7.0 min" in finding["explanation"]
    assert "net 0 (0.0%" in finding["explanation"]


def test_returning_in_pieces_and_changing_sizes_still_counts():
    # b returns a's 1.0 in two halves; the next round is 2.0, returned whole
    rows = [(0, 100.0, 1.0, "b", "a"), (20, 100.0, 0.5, "a", "b"), (40, 100.0, 0.5, "a", "b"),
            (60, 100.0, 2.0, "b", "a"), (80, 100.0, 2.0, "a", "b"),
            (100, 100.0, 1.5, "b", "a"), (120, 100.0, 1.5, "a", "b")]
    [finding] = detect(tape(rows, "SOLUSDT")).to_dicts()
    m = metrics(finding)
    # legs 1.0 | 0.5+0.5 | 2.0 | 2.0 | 1.5 | 1.5: three returns of the same size, every leg returned
    assert m["trades"] == 7 and m["reversals"] == 3 and m["returned_share"] == pytest.approx(1.0)
    assert m["gross"] == pytest.approx(9.0) and m["net_share"] == pytest.approx(0.0)


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
