"""Pump-and-dump on hand-made tapes (a pump, its look-alikes), generated scenarios and a real Binance pump tape."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from surveillance_pipeline.contract import TRADE_SCHEMA, Pattern
from surveillance_pipeline.detectors.base import FINDING_SCHEMA, DetectionInputs, Finding
from surveillance_pipeline.detectors.pump import PumpAndDumpSettings, detect_pump_and_dump
from surveillance_pipeline.ingest.importer import ImportOptions, iter_validated, make_context, prepare_source
from surveillance_pipeline.scenarios import ScenarioSpec
from tests.detectors.conftest import (
    DAY, MIDNIGHT, assert_episodes_found, assert_no_findings, complete_trades, detect_daily, detect_generated,
)

PUMP_AT = MIDNIGHT + timedelta(hours=14)
P0 = 1.0e-5
SYMBOL = "PMPBTC"
PUMPS_DEV = Path(__file__).resolve().parents[2].parent / "shared/data/pumps_dev"


def frame(seconds, side, price, qty=None, buyer=None, seller=None, start: datetime = MIDNIGHT) -> pl.DataFrame:
    """Trades in TRADE_SCHEMA: `seconds` after `start`, sides, prices (quantities default to 100)."""
    seconds = np.asarray(seconds, dtype=float)
    n = len(seconds)
    epoch_us = int(start.timestamp() * 1_000_000) + np.round(seconds * 1_000_000).astype(np.int64)
    data = {
        "timestamp": pl.Series(epoch_us).cast(pl.Datetime("us", "UTC")),
        "symbol": [SYMBOL] * n, "side": list(side), "price": np.asarray(price, dtype=float),
        "quantity": np.full(n, 100.0) if qty is None else np.asarray(qty, dtype=float),
        "buyer_id": pl.Series(buyer, dtype=pl.String) if buyer is not None else pl.Series([None] * n, dtype=pl.String),
        "seller_id": pl.Series(seller, dtype=pl.String) if seller is not None else pl.Series([None] * n, dtype=pl.String),
    }
    return complete_trades(pl.DataFrame(data))


def with_ids(trades: pl.DataFrame) -> pl.DataFrame:
    trades = trades.sort("timestamp", maintain_order=True)
    return trades.with_columns(pl.format("t{}", pl.int_range(pl.len())).alias("trade_id"))


def quiet(hours: float, start: datetime, seed: int, per_minute: float = 1.0, level: float = P0,
          accounts: int = 0) -> pl.DataFrame:
    """An ordinary thin market: ~per_minute trades a minute, both sides, prices bouncing ~0.2 % around level."""
    rng = np.random.default_rng(seed)
    n = int(hours * 60 * per_minute)
    seconds = np.sort(rng.uniform(0, hours * 3600, n))
    price = level * np.exp(rng.normal(0, 0.002, n))
    side = np.where(rng.random(n) < 0.5, "buy", "sell")
    buyer = seller = None
    if accounts:
        buyer = [f"r{i}" for i in rng.integers(0, accounts, n)]
        seller = [f"r{i}" for i in rng.integers(0, accounts, n)]
    return frame(seconds, side, price, rng.lognormal(4, 1, n), buyer, seller, start)


def pump(at: datetime, seed: int, buyers: int = 300, rise: float = 0.4, settle: float = 0.05,
         accounts: bool = False, sellers: list[str] | None = None) -> pl.DataFrame:
    """A Telegram-style pump: `buyers` market buys in the first minute, most filled as several trades at one
    instant while the price climbs `rise`; then sells, and the price sinks to `settle` above where it started."""
    rng = np.random.default_rng(seed)
    fills = rng.integers(1, 5, buyers)  # trades per market buy: most sweep a few levels
    order_s = np.sort(rng.uniform(0, 55, buyers))
    seconds = np.repeat(order_s, fills)
    climb = P0 * (1 + rise * np.linspace(0, 1, len(seconds)) ** 0.5)
    n_sell = 600
    sell_s = 60 + np.sort(rng.uniform(0, 1800, n_sell))
    decay = P0 * (1 + settle + (rise - settle) * np.exp(-(sell_s - 60) / 240))
    sides = ["buy"] * len(seconds) + list(np.where(rng.random(n_sell) < 0.3, "buy", "sell"))
    buyer = seller = None
    if accounts:
        crowd = np.repeat([f"u{i}" for i in range(buyers)], fills)
        makers = sellers or ["mm"]
        buyer = list(crowd) + [f"u{i}" for i in rng.integers(0, buyers, n_sell)]
        seller = [makers[i % len(makers)] for i in range(len(seconds))] + [f"u{i}" for i in rng.integers(0, buyers, n_sell)]
    return frame(np.concatenate([seconds, sell_s]), sides, np.concatenate([climb, decay]), None, buyer, seller, at)


def day_around(spike: pl.DataFrame, at: datetime = PUMP_AT, settle: float = 0.05) -> pl.DataFrame:
    """A quiet day at P0 until `at`, the spike, then the quiet market again where the spike left the price."""
    before = quiet((at - MIDNIGHT).total_seconds() / 3600, MIDNIGHT, 2)
    after_start = at + timedelta(minutes=31)
    after = quiet((MIDNIGHT + timedelta(days=1) - after_start).total_seconds() / 3600, after_start, 7,
                  level=P0 * (1 + settle))
    return with_ids(pl.concat([before, spike, after]))


def detect(day: pl.DataFrame, history: pl.DataFrame | None = None, **settings) -> pl.DataFrame:
    inputs = DetectionInputs(trades=day, history=history if history is not None else pl.DataFrame(schema=TRADE_SCHEMA),
                             day=DAY)
    found = detect_pump_and_dump(inputs, PumpAndDumpSettings(**settings))
    assert found.schema == pl.Schema(FINDING_SCHEMA)
    return found


def previous_day(seed: int = 1, **kwargs) -> pl.DataFrame:
    return quiet(24, MIDNIGHT - timedelta(days=1), seed, **kwargs)


def test_an_anonymous_pump_and_dump_is_one_market_level_finding():
    found = detect(day_around(pump(PUMP_AT, 3)), with_ids(previous_day()))
    assert found.height == 1
    row = found.row(0, named=True)
    assert row[Finding.PATTERN] == Pattern.PUMP_AND_DUMP.value and row[Finding.SYMBOL] == SYMBOL
    assert row[Finding.USER_IDS] == []
    assert PUMP_AT <= row[Finding.WINDOW_START] < PUMP_AT + timedelta(minutes=1)
    assert row[Finding.WINDOW_START] < row[Finding.WINDOW_END] < PUMP_AT + timedelta(hours=1)
    assert 0.5 < row[Finding.SCORE] < 1.0
    metrics = json.loads(row[Finding.METRICS])
    assert metrics["rise"] == pytest.approx(0.4, abs=0.03) and metrics["retrace"] > 0.8
    assert metrics["spike_rush_orders"] >= 100 and metrics["trade_multiple"] > 100
    assert "x the usual" in row[Finding.EXPLANATION] and "rush orders" in row[Finding.EXPLANATION]
    assert 0 < len(row[Finding.EVIDENCE]) <= 300 and row[Finding.EVIDENCE][0].startswith("trade:t")


def test_a_sustained_news_rally_with_thousands_of_independent_buyers_is_not_a_pump():
    """2,000 buyers over 30 minutes lift the price 15 %, and it stays there: no collapse, no finding. Their
    market buys sweep the book as a pump's do (rush orders), so the spike tests alone would not tell."""
    rng = np.random.default_rng(5)
    n = 2_000
    fills = rng.integers(1, 4, n)
    seconds = np.repeat(np.sort(rng.uniform(0, 1800, n)), fills)
    price = P0 * (1 + 0.15 * seconds / 1800)
    fans = np.repeat([f"fan{i}" for i in range(n)], fills)
    rally = frame(seconds, ["buy"] * len(seconds), price, None, list(fans), ["mm"] * len(seconds), PUMP_AT)
    after = quiet(9, PUMP_AT + timedelta(minutes=30), 6, level=P0 * 1.14, accounts=50)
    day = with_ids(pl.concat([quiet(14, MIDNIGHT, 2, accounts=50), rally, after]))
    assert detect(day, with_ids(previous_day(accounts=50))).is_empty()
    # the same tape without accounts: still the price path decides
    anonymous = day.with_columns(pl.lit(None, pl.String).alias("buyer_id"), pl.lit(None, pl.String).alias("seller_id"))
    assert detect(anonymous, previous_day()).is_empty()
    # while a rally that collapses is caught: the dump is what tells them apart
    collapsed = with_ids(pl.concat([quiet(14, MIDNIGHT, 2), rally, quiet(9, PUMP_AT + timedelta(minutes=30), 6)]))
    assert detect(collapsed.with_columns(pl.lit(None, pl.String).alias("buyer_id"),
                                         pl.lit(None, pl.String).alias("seller_id")), previous_day()).height == 1


def test_ordinary_volatility_and_a_lone_sweeping_order_are_quiet():
    """A busy, jumpy day (5x the usual rate, 1 % steps) and one market buy sweeping 40 levels (+8 %)."""
    rng = np.random.default_rng(8)
    sweep = frame(np.full(40, 3600.0), ["buy"] * 40, P0 * np.linspace(1.0, 1.08, 40), start=PUMP_AT)
    n = 5 * 60 * 10
    busy = frame(np.sort(rng.uniform(0, 36_000, n)), np.where(rng.random(n) < 0.5, "buy", "sell"),
                 P0 * np.exp(np.cumsum(rng.normal(0, 0.01, n))), start=MIDNIGHT + timedelta(hours=3))
    day = with_ids(pl.concat([quiet(24, MIDNIGHT, 2), busy, sweep]))
    assert detect(day, with_ids(previous_day())).is_empty()


def crowd(at: datetime, buyers: int, minutes: float, rise: float, seed: int, accounts: bool = True) -> pl.DataFrame:
    """`buyers` accounts each sending 1-2 market buys (1-4 fills each), spread evenly over `minutes` from `at`,
    while the price climbs linearly by `rise`."""
    rng = np.random.default_rng(seed)
    owner = np.repeat(np.arange(buyers), rng.integers(1, 3, buyers))
    fills = rng.integers(1, 5, len(owner))
    seconds = np.repeat(np.sort(rng.uniform(0, minutes * 60, len(owner))), fills)
    who = [f"c{i}" for i in np.repeat(owner, fills)] if accounts else None
    return frame(seconds, ["buy"] * len(seconds), P0 * (1 + rise * seconds / (minutes * 60)), None, who,
                 ["mm"] * len(seconds) if accounts else None, at)


def drift(start: datetime, minutes: float, top: float, bottom: float, seed: int, per_minute: float = 3.0,
          accounts: bool = True) -> pl.DataFrame:
    """Two-way trading at ~per_minute trades a minute while the price moves linearly from top to bottom (x P0)."""
    rng = np.random.default_rng(seed)
    n = int(minutes * per_minute)
    seconds = np.sort(rng.uniform(0, minutes * 60, n))
    price = P0 * (top + (bottom - top) * seconds / (minutes * 60)) * np.exp(rng.normal(0, 0.002, n))
    side = np.where(rng.random(n) < 0.6, "sell", "buy")
    buyer = seller = None
    if accounts:
        buyer, seller = [f"r{i}" for i in rng.integers(0, 50, n)], [f"r{i}" for i in rng.integers(0, 50, n)]
    return frame(seconds, side, price, rng.lognormal(4, 1, n), buyer, seller, start)


def test_a_small_crowd_over_minutes_with_a_slow_collapse_is_found():
    """40 buyers over 4 minutes (~15 market buys a minute: no single minute holds 30) lift the price 40 %; it
    collapses linearly over two hours to +5 %. Found through the 5-minute window and the 3-hour dump horizon."""
    for accounts in (True, False):
        rise = crowd(PUMP_AT, 40, 4, 0.4, seed=21, accounts=accounts)
        fall = drift(PUMP_AT + timedelta(minutes=4), 120, 1.4, 1.05, seed=22, accounts=accounts)
        after_start = PUMP_AT + timedelta(minutes=124)
        after = quiet((MIDNIGHT + timedelta(days=1) - after_start).total_seconds() / 3600, after_start, 7,
                      level=P0 * 1.05, accounts=50 if accounts else 0)
        before = quiet(14, MIDNIGHT, 2, accounts=50 if accounts else 0)
        day = with_ids(pl.concat([before, rise, fall, after]))
        history = with_ids(previous_day(accounts=50 if accounts else 0))
        found = detect(day, history)
        assert found.height == 1, accounts
        row = found.row(0, named=True)
        metrics = json.loads(row[Finding.METRICS])
        assert PUMP_AT - timedelta(minutes=1) <= row[Finding.WINDOW_START] < PUMP_AT + timedelta(minutes=1)
        assert metrics["busiest_window_minutes"] > 1 and metrics["rise"] == pytest.approx(0.4, abs=0.05)
        assert metrics["retrace"] > 0.75
        assert PUMP_AT + timedelta(minutes=50) < row[Finding.WINDOW_END] < PUMP_AT + timedelta(minutes=100)
        if accounts:
            assert metrics["max_distinct_buyers"] >= 30
        # measured one minute at a time, or with a one-hour dump horizon, it is missed
        assert detect(day, history, burst_windows_minutes=(1.0,)).is_empty()
        assert detect(day, history, dump_horizon_minutes=60).is_empty()


def test_a_sustained_rally_of_300_buyers_is_not_a_pump():
    """300 buyers over 15 minutes lift the price 20 % and it holds for the rest of the day (a news rally): the
    burst tests pass, the dump never comes, nothing is reported; the same crowd followed by a collapse is."""
    for accounts in (True, False):
        extra = 50 if accounts else 0
        rally = crowd(PUMP_AT, 300, 15, 0.2, seed=31, accounts=accounts)
        hold = drift(PUMP_AT + timedelta(minutes=15), 600, 1.2, 1.18, seed=32, accounts=accounts)
        day = with_ids(pl.concat([quiet(14, MIDNIGHT, 2, accounts=extra), rally, hold]))
        history = with_ids(previous_day(accounts=extra))
        assert detect(day, history).is_empty(), accounts
        fall = drift(PUMP_AT + timedelta(minutes=15), 90, 1.2, 1.0, seed=33, accounts=accounts)
        dumped = with_ids(pl.concat([quiet(14, MIDNIGHT, 2, accounts=extra), rally, fall]))
        assert detect(dumped, history).height == 1, accounts


def test_a_pump_without_the_dump_or_without_the_rise_is_not_reported():
    no_dump = day_around(pump(PUMP_AT, 3, settle=0.3), settle=0.3)  # the price stays near the top
    small = day_around(pump(PUMP_AT, 3, rise=0.03, settle=0.0), settle=0.0)  # a crowd; the price barely moves
    for day in (no_dump, small):
        assert detect(day, previous_day()).is_empty()
    assert detect(day_around(pump(PUMP_AT, 3)), previous_day()).height == 1


def test_the_baseline_comes_from_history_or_the_earlier_hours_of_the_day():
    at_six = MIDNIGHT + timedelta(hours=6)
    assert detect(day_around(pump(at_six, 3), at_six)).height == 1  # no history: the six hours before it
    early_at = MIDNIGHT + timedelta(minutes=30)
    early = day_around(pump(early_at, 3), early_at)
    assert detect(early).is_empty()  # half an hour of tape is no baseline (min_baseline_hours)
    assert detect(early, previous_day()).height == 1


def test_waves_of_one_pump_merge_into_one_finding_and_two_pumps_make_two():
    waves = pl.concat([pump(PUMP_AT, 3), pump(PUMP_AT + timedelta(minutes=5), 4, buyers=200)])
    assert detect(day_around(waves), previous_day()).height == 1
    later = PUMP_AT + timedelta(hours=4)
    two = pl.concat([day_around(pump(PUMP_AT, 3)).filter(pl.col("timestamp") < later), pump(later, 4)])
    two = with_ids(pl.concat([two, quiet(5, later + timedelta(minutes=31), 8, level=P0 * 1.05)]))
    found = detect(two, previous_day())
    assert found.height == 2 and found[Finding.WINDOW_START].is_sorted()


def test_where_accounts_exist_the_organisers_are_named():
    """Three organisers buy in the hours before and their resting sells are what the crowd lifts."""
    rng = np.random.default_rng(9)
    organisers = ["org1", "org2", "org3"]
    n = 60
    accumulation = frame(np.sort(rng.uniform(0, 3 * 3600, n)), ["buy"] * n, np.full(n, P0), np.full(n, 200.0),
                         [organisers[i % 3] for i in range(n)], [f"r{i}" for i in rng.integers(0, 50, n)],
                         PUMP_AT - timedelta(hours=4))
    day = with_ids(pl.concat([quiet(24, MIDNIGHT, 2, accounts=50), accumulation,
                              pump(PUMP_AT, 3, accounts=True, sellers=organisers + ["mm"] * 9)]))
    found = detect(day, with_ids(previous_day(accounts=50)))
    assert found.height == 1
    row = found.row(0, named=True)
    assert row[Finding.USER_IDS] == organisers
    assert "3 account(s) that had accumulated before the spike" in row[Finding.EXPLANATION]
    sold_by = dict(day.select("trade_id", "seller_id").iter_rows())
    assert sold_by[row[Finding.EVIDENCE][0].removeprefix("trade:")] in organisers


def test_settings_are_documented_bounded_and_strict():
    for name, field in PumpAndDumpSettings.model_fields.items():
        assert name == "enabled" or field.description, name
    with pytest.raises(ValueError):
        PumpAndDumpSettings(min_retrace_share=1.5)
    with pytest.raises(ValueError):
        PumpAndDumpSettings(volume_multiple=3)  # not a field
    with pytest.raises(ValueError):
        PumpAndDumpSettings(burst_windows_minutes=(1.0, 2.5), chunk_seconds=60)  # not on the chunk grid
    with pytest.raises(ValueError):
        PumpAndDumpSettings(burst_windows_minutes=())
    assert detect(with_ids(quiet(2, MIDNIGHT, 2)), enabled=False).is_empty()
    assert detect(pl.DataFrame(schema=TRADE_SCHEMA)).is_empty()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_pumps_are_found_and_nothing_else(seed):
    """Each pump found by exactly one finding overlapping its window, and no false alert: rallies, excessive
    traders, wash trades stay quiet."""
    found, labels = detect_generated(detect_pump_and_dump, PumpAndDumpSettings(), ScenarioSpec(days=2, seed=seed),
                                     daily=True, history=True)
    assert_episodes_found(found, labels, Pattern.PUMP_AND_DUMP, each_once=True, slack_minutes=0.0)


def test_a_clean_generated_market_raises_no_pump():
    assert_no_findings(*detect_generated(detect_pump_and_dump, PumpAndDumpSettings(),
                                         ScenarioSpec(days=2, seed=4, clean=True), daily=True, history=True))


@pytest.mark.slow
def test_a_real_binance_pump_tape_day_by_day():
    """SNM/BTC, 20 days around the pump of 2021-01-08 21:00 UTC (La Morgia et al.): it is found, within
    30 minutes, and at most one other event of the tape is reported."""
    path = PUMPS_DEV / "SNM_2021-01-08_21.00.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    prepared = prepare_source(path, ImportOptions())
    ctx = make_context(prepared.generate_trade_ids, datetime(2009, 1, 3, tzinfo=UTC), 86_400)
    tape = pl.concat([accepted.drop("__line") for _, accepted, _ in iter_validated(prepared, ctx, 100_000)])
    found = detect_daily(detect_pump_and_dump, PumpAndDumpSettings(), tape, history=True)
    pump_time, slack = datetime(2021, 1, 8, 21, tzinfo=UTC), timedelta(minutes=30)
    hits = found.filter((pl.col("window_start") - slack <= pump_time) & (pl.col("window_end") + slack >= pump_time))
    assert hits.height == 1 and found.height <= 2
    assert hits["user_ids"].to_list() == [[]]
