"""Excessive trading (HFT flag) on hand-made tapes and on generated scenarios."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from surveillance_pipeline.contract import Pattern
from surveillance_pipeline.detectors.base import FINDING_SCHEMA, DetectionInputs, Finding
from surveillance_pipeline.detectors.excessive import ExcessiveTradingSettings, detect_excessive_trading
from surveillance_pipeline.scenarios import ScenarioSpec
from tests.detectors.conftest import (
    DAY, MIDNIGHT, assert_episodes_found, assert_no_findings, complete_trades, detect_generated,
)


def trades(seconds, taker: str | list[str], maker: str | list[str], symbol: str = "ABCUSDT", seed: int = 0,
           start: datetime = MIDNIGHT) -> pl.DataFrame:
    """Trades `seconds` after `start`; the taker buys or sells at random against the maker."""
    rng = np.random.default_rng(seed)
    n = len(seconds)
    takers = [taker] * n if isinstance(taker, str) else list(taker)
    makers = [maker] * n if isinstance(maker, str) else list(maker)
    buy = rng.random(n) < 0.5
    epoch_us = int(start.timestamp() * 1_000_000) + (np.asarray(seconds, dtype=float) * 1_000_000).astype(np.int64)
    return complete_trades(pl.DataFrame({
        "timestamp": pl.Series(epoch_us).cast(pl.Datetime("us", "UTC")),
        "symbol": [symbol] * n,
        "side": np.where(buy, "buy", "sell"),
        "price": 100.0 + rng.normal(0, 0.1, n),
        "quantity": rng.lognormal(0, 1, n),
        "buyer_id": np.where(buy, takers, makers),
        "seller_id": np.where(buy, makers, takers),
    }))


def background(symbol: str = "ABCUSDT", accounts: int = 100, n: int = 2_000, seed: int = 1) -> pl.DataFrame:
    """A day of ordinary trading: `accounts` retail accounts, a few dozen trades each, with a market maker."""
    rng = np.random.default_rng(seed)
    return trades(np.sort(rng.uniform(0, 86_000, n)), [f"r{i}" for i in rng.integers(0, accounts, n)], "mm",
                  symbol, seed)


def detect(*parts: pl.DataFrame, **settings) -> pl.DataFrame:
    day = pl.concat(parts).sort("timestamp").with_columns(pl.format("t{}", pl.int_range(pl.len())).alias("trade_id"))
    found = detect_excessive_trading(DetectionInputs(trades=day, day=DAY), ExcessiveTradingSettings(**settings))
    assert found.schema == pl.Schema(FINDING_SCHEMA)
    return found


def test_an_account_over_the_hourly_limit_is_flagged_once_with_its_rate_and_percentile():
    rng = np.random.default_rng(2)
    burst = trades(np.sort(rng.uniform(10 * 3600, 11 * 3600, 1_200)), "bot",
                   [f"r{i}" for i in rng.integers(0, 100, 1_200)], seed=2)
    found = detect(background(), burst)
    assert found.height == 1
    row = found.row(0, named=True)
    assert row[Finding.PATTERN] == Pattern.EXCESSIVE_TRADING.value and row[Finding.USER_IDS] == ["bot"]
    assert row[Finding.SYMBOL] == "ABCUSDT"
    assert MIDNIGHT + timedelta(hours=10) <= row[Finding.WINDOW_START] < row[Finding.WINDOW_END]
    assert row[Finding.WINDOW_END] <= MIDNIGHT + timedelta(hours=11)
    assert 0.3 < row[Finding.SCORE] <= 0.6 * 2 / 3 + 1e-9  # 2x the limit: r / (1 + r) x max_score
    assert "1,200 trades in one hour" in row[Finding.EXPLANATION]
    assert "2.0x the 600 per hour limit" in row[Finding.EXPLANATION]
    assert "busier than 100% of the other 100 accounts" in row[Finding.EXPLANATION]
    metrics = json.loads(row[Finding.METRICS])
    assert metrics["peak_hour_trades"] == 1_200 and metrics["peak_hour_percentile"] == 1.0
    assert len(row[Finding.EVIDENCE]) == 300


def test_a_busy_but_steady_account_under_the_limits_is_not_flagged():
    """500 trades an hour for ten hours (5,000 in the day): busy, but under every limit."""
    rng = np.random.default_rng(3)
    steady = trades(np.sort(rng.uniform(8 * 3600, 18 * 3600, 5_000)), "busy", "mm", seed=3)
    hours = steady.group_by_dynamic("timestamp", every="1h").agg(pl.len())["len"]
    assert hours.max() < 600
    assert detect(background(), steady).is_empty()


def test_a_market_makers_passive_fills_count_only_when_asked_and_never_when_exempt():
    rng = np.random.default_rng(4)
    n = 2_000
    quoted = trades(np.sort(rng.uniform(9 * 3600, 10 * 3600, n)), [f"r{i}" for i in rng.integers(0, 100, n)],
                    "mm", seed=4)
    assert detect(background(), quoted).is_empty()  # the takers decided these trades, not the market maker
    flagged = detect(background(), quoted, count_passive_fills=True)
    assert flagged["user_ids"].to_list() == [["mm"]]
    assert detect(background(), quoted, count_passive_fills=True, exempt_accounts=("mm",)).is_empty()


def test_the_daily_limits_per_symbol_and_overall():
    rng = np.random.default_rng(5)
    # 12,000 trades spread over the day: ~500 an hour, under the hourly limit, over the per-symbol day limit
    spread = trades(np.sort(rng.uniform(0, 86_000, 12_000)), "algo", "mm", seed=5)
    found = detect(background(), spread)
    assert found["user_ids"].to_list() == [["algo"]]
    assert "12,000 trades in the day, 1.2x the 10,000 per day limit" in found["explanation"][0]
    # 9,000 + 1,500 + 300 in three symbols (~450 an hour together): under every per-symbol limit and every rate,
    # together over the overall day limit; reported on the symbols that carry a real share of it
    parts = [trades(np.sort(rng.uniform(0, 86_000, k)), "wide", "mm", symbol, seed)
             for k, symbol, seed in ((9_000, "AAAUSDT", 6), (1_500, "BBBUSDT", 7), (300, "CCCUSDT", 8))]
    found = detect(background(), *parts)
    assert found["symbol"].sort().to_list() == ["AAAUSDT", "BBBUSDT"]  # CCC: 3 % of its trades
    assert found["user_ids"].to_list() == [["wide"], ["wide"]]
    for row in found.iter_rows(named=True):
        assert "10,800 trades across 3 symbol(s) in the day, 1.1x the 10,000 per day limit" in row[Finding.EXPLANATION]
        assert row[Finding.WINDOW_START] < MIDNIGHT + timedelta(hours=1)  # the day: no rate limit reached
        assert json.loads(row[Finding.METRICS])["all_hour_ratio"] < 1


def test_a_short_fast_session_is_flagged_by_its_rate():
    """2,000 trades an hour for 15 minutes: 500 trades, never 600 in an hour, but 4 times the hourly limit's pace
    over a quarter of an hour."""
    rng = np.random.default_rng(11)
    start = 9 * 3600
    burst = trades(np.sort(rng.uniform(start, start + 900, 500)), "bot", "mm", seed=11)
    found = detect(background(), burst)
    assert found.height == 1 and found["user_ids"].to_list() == [["bot"]]
    row = found.row(0, named=True)
    assert MIDNIGHT + timedelta(seconds=start) <= row[Finding.WINDOW_START] < row[Finding.WINDOW_END]
    assert row[Finding.WINDOW_END] <= MIDNIGHT + timedelta(seconds=start + 900)
    assert "500 trades in 15 min" in row[Finding.EXPLANATION] and "2,000 per hour" in row[Finding.EXPLANATION]
    assert "1.7x the 1,200 per hour limit over 15 min" in row[Finding.EXPLANATION]
    metrics = json.loads(row[Finding.METRICS])
    assert metrics["peak_hour_trades"] == 500 and metrics["hour_ratio"] < 1 <= metrics["short_ratio"]
    assert len(row[Finding.EVIDENCE]) == 300
    # the same session at half the pace stays under the limit
    calm = trades(np.sort(rng.uniform(start, start + 900, 250)), "bot", "mm", seed=12)
    assert detect(background(), calm).is_empty()


def test_one_account_fast_across_three_symbols_is_flagged_in_each():
    """1,500 trades an hour for 40 minutes spread over three symbols (500 an hour each: under every per-symbol
    limit), and a stray trade in a fourth: flagged in the three it trades at pace, not in the fourth."""
    rng = np.random.default_rng(12)
    start, n = 14 * 3600, 1_000
    seconds = np.sort(rng.uniform(start, start + 2_400, n))
    symbols = np.array(["AAAUSDT", "BBBUSDT", "CCCUSDT"])[rng.integers(0, 3, n)]
    parts = [trades(seconds[symbols == symbol], "multi", "mm", symbol, seed)
             for seed, symbol in enumerate(("AAAUSDT", "BBBUSDT", "CCCUSDT"))]
    stray = trades([start + 600.0], "multi", "mm", "DDDUSDT", seed=9)
    found = detect(background(), *parts, stray)
    assert found["symbol"].sort().to_list() == ["AAAUSDT", "BBBUSDT", "CCCUSDT"]
    assert set(found["user_ids"].explode()) == {"multi"}
    day = pl.concat([background(), *parts, stray]).sort("timestamp").with_columns(
        pl.format("t{}", pl.int_range(pl.len())).alias("trade_id"))  # as detect() numbers them
    symbol_of = dict(day.select("trade_id", "symbol").iter_rows())
    end = MIDNIGHT + timedelta(seconds=start + 2_400)
    for row in found.iter_rows(named=True):
        metrics = json.loads(row[Finding.METRICS])
        assert metrics["short_ratio"] < 1 and metrics["hour_ratio"] < 1 and metrics["all_short_ratio"] >= 1
        assert 0.25 < metrics["symbol_share"] < 0.42
        assert "trades across 4 symbol(s) in 15 min" in row[Finding.EXPLANATION]
        assert MIDNIGHT + timedelta(seconds=start) <= row[Finding.WINDOW_START] < row[Finding.WINDOW_END] <= end
        assert row[Finding.EVIDENCE]  # the symbol's own trades in the busiest window
        assert {symbol_of[e.removeprefix("trade:")] for e in row[Finding.EVIDENCE]} == {row[Finding.SYMBOL]}
    # one symbol alone at that pace: 500 an hour, under every limit
    assert detect(background(), parts[0]).is_empty()


def test_two_bursts_in_one_symbol_are_one_finding_spanning_both():
    rng = np.random.default_rng(6)
    bursts = [trades(np.sort(rng.uniform(h * 3600, h * 3600 + 1_800, 700)), "bot", "mm", seed=h) for h in (3, 15)]
    found = detect(background(), *bursts)
    assert found.height == 1
    assert found["window_start"][0] < MIDNIGHT + timedelta(hours=4)
    assert found["window_end"][0] > MIDNIGHT + timedelta(hours=15)


def test_an_anonymous_tape_or_a_disabled_detector_stands_aside():
    rng = np.random.default_rng(7)
    burst = trades(np.sort(rng.uniform(0, 3600, 1_000)), "bot", "mm", seed=7)
    anonymous = burst.with_columns(pl.lit(None, pl.String).alias("buyer_id"), pl.lit(None, pl.String).alias("seller_id"))
    assert detect(anonymous).is_empty()
    assert detect(burst, enabled=False).is_empty()


def test_settings_are_documented_and_bounded():
    for name, field in ExcessiveTradingSettings.model_fields.items():
        assert name == "enabled" or field.description, name
    with pytest.raises(ValueError):
        ExcessiveTradingSettings(max_trades_per_hour=0)
    with pytest.raises(ValueError):
        ExcessiveTradingSettings(max_score=2)
    with pytest.raises(ValueError):
        ExcessiveTradingSettings(short_window_minutes=0)


@pytest.mark.parametrize("seed, trades_per_day", [(1, 20_000), (2, 20_000), (3, 60_000)])
def test_generated_excessive_traders_are_found_and_market_makers_are_not(seed, trades_per_day):
    found, labels = detect_generated(detect_excessive_trading, ExcessiveTradingSettings(),
                                     ScenarioSpec(days=2, seed=seed, trades_per_day=trades_per_day), daily=True)
    episodes = labels.filter(pl.col("pattern") == Pattern.EXCESSIVE_TRADING.value)
    assert not episodes["user_ids"].str.contains(";", literal=True).any()  # one account each: a finding must name it
    assert_episodes_found(found, labels, Pattern.EXCESSIVE_TRADING, each_once=True, slack_minutes=0.0)


def test_a_clean_generated_market_flags_nobody():
    assert_no_findings(*detect_generated(detect_excessive_trading, ExcessiveTradingSettings(),
                                         ScenarioSpec(days=2, seed=4, clean=True), daily=True))
