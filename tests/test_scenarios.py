"""The labelled scenario generator: contract shape, determinism, realism of the background, and that each
labelled episode really shows its abuse on the data."""
from __future__ import annotations

import dataclasses
import datetime
import re
import time

import numpy as np
import polars as pl
import pytest

from surveillance_pipeline.contract import (
    LABEL_SCHEMA,
    ORDER_SCHEMA,
    TRADE_LEVEL_PATTERNS,
    TRADE_SCHEMA,
    USER_IDS_SEPARATOR,
    Label,
    Order,
    OrderEvent,
    Pattern,
    Side,
    Trade,
)
from surveillance_pipeline.detectors.base import DetectionInputs
from surveillance_pipeline.detectors.circular import CircularTradingSettings, detect_circular_trading
from surveillance_pipeline.detectors.wash import WashTradingSettings, detect_wash_trading
from surveillance_pipeline.scenarios import ScenarioSpec, generate_scenario, profile_for, write_scenario

SMALL = ScenarioSpec(days=1, seed=11, accounts=150, trades_per_day=4_000)
CLEAN = ScenarioSpec(days=1, seed=5, accounts=150, trades_per_day=4_000, clean=True)
NEW, CANCEL = OrderEvent.NEW.value, OrderEvent.CANCEL.value
BUY, SELL = Side.BUY.value, Side.SELL.value
ONE_SECOND = datetime.timedelta(seconds=1)


@pytest.fixture(scope="module")
def scenario():
    return generate_scenario(SMALL)


@pytest.fixture(scope="module")
def clean():
    return generate_scenario(CLEAN)


def _labels_of(scenario, pattern: Pattern) -> list[dict]:
    rows = scenario.labels.filter(pl.col(Label.PATTERN) == pattern.value).to_dicts()
    assert rows, f"no {pattern} label"
    return rows


def _users(label: dict) -> list[str]:
    return label[Label.USER_IDS].split(USER_IDS_SEPARATOR)


def _in_window(frame: pl.DataFrame, label: dict, slack: datetime.timedelta = datetime.timedelta(0)) -> pl.DataFrame:
    ts = pl.col(Trade.TIMESTAMP)
    return frame.filter((pl.col(Trade.SYMBOL) == label[Label.SYMBOL])
                        & ts.is_between(label[Label.START] - slack, label[Label.END] + slack))


def _new_and_cancel(orders: pl.DataFrame) -> pl.DataFrame:
    """One row per order: its new event joined with its cancel time (null if never cancelled)."""
    cancels = orders.filter(pl.col(Order.EVENT) == CANCEL).select(
        Order.ORDER_ID, pl.col(Order.TIMESTAMP).alias("cancelled_at"))
    return orders.filter(pl.col(Order.EVENT) == NEW).join(cancels, on=Order.ORDER_ID, how="left")


def _episode_trades(scenario, label: dict) -> pl.DataFrame:
    """Trades among the label's accounts in its window, of about the episode's size: the labelled accounts
    are ordinary retail accounts too, and may meet each other by chance in the background."""
    users = _users(label)
    trades = _in_window(scenario.trades, label).filter(
        pl.col(Trade.BUYER_ID).is_in(users) & pl.col(Trade.SELLER_ID).is_in(users))
    size = trades[Trade.QUANTITY].median()
    return trades.filter((pl.col(Trade.QUANTITY) / size - 1).abs() < 0.01)


def _filled(trades: pl.DataFrame) -> pl.DataFrame:
    legs = [trades.select(pl.col(col).alias(Order.ORDER_ID), Trade.QUANTITY)
            for col in (Trade.BUYER_ORDER_ID, Trade.SELLER_ORDER_ID)]
    return pl.concat(legs).group_by(Order.ORDER_ID).agg(pl.col(Trade.QUANTITY).sum().alias("filled"))


# --- contract shape -------------------------------------------------------------------------------

def test_frames_follow_the_contract(scenario):
    assert dict(scenario.trades.schema) == TRADE_SCHEMA
    assert dict(scenario.orders.schema) == ORDER_SCHEMA
    assert dict(scenario.labels.schema) == LABEL_SCHEMA
    assert scenario.trades[Trade.TIMESTAMP].is_sorted()
    assert scenario.orders[Order.TIMESTAMP].is_sorted()
    trades = scenario.trades
    assert trades.null_count().sum_horizontal().item() == 0
    assert set(trades[Trade.SIDE].unique()) == {BUY, SELL}
    assert set(trades[Trade.MARKET_TYPE].unique()) == {"spot"}
    notional = pl.col(Trade.PRICE) * pl.col(Trade.QUANTITY)
    assert trades.select((pl.col(Trade.QUOTE_QUANTITY) - notional).abs().max()).item() < 1e-6
    assert (trades[Trade.FEE] > 0).all() and (trades[Trade.QUANTITY] > 0).all()
    assert trades.select(pl.struct(Trade.SYMBOL, Trade.TRADE_ID).n_unique()).item() == trades.height
    assert trades[Trade.TRADE_ID].str.contains(r"^[A-Z]+-\d+$").all()
    assert trades[Trade.BUYER_ID].str.contains(r"^acct_\d{4,}$").all()
    assert set(scenario.orders[Order.EVENT].unique()) == {NEW, CANCEL}


def test_timestamps_lie_within_the_scenario_days(scenario):
    start = datetime.datetime.combine(SMALL.start_date, datetime.time(), tzinfo=datetime.UTC)
    end = start + datetime.timedelta(days=SMALL.days)
    for frame in (scenario.trades, scenario.orders):
        assert frame[Trade.TIMESTAMP].min() >= start and frame[Trade.TIMESTAMP].max() < end
    assert (scenario.labels[Label.START] <= scenario.labels[Label.END]).all()


def test_prices_lie_on_each_symbols_tick_grid(scenario):
    for symbol, group in scenario.trades.group_by(Trade.SYMBOL):
        ticks = group[Trade.PRICE].to_numpy() / profile_for(symbol[0]).tick
        assert np.abs(ticks - np.round(ticks)).max() < 1e-6


def test_generation_is_deterministic_per_seed():
    spec = ScenarioSpec(days=1, seed=3, accounts=60, trades_per_day=1_500)
    first, second = generate_scenario(spec), generate_scenario(spec)
    for name in ("trades", "orders", "labels"):
        assert getattr(first, name).equals(getattr(second, name)), name
    other = generate_scenario(ScenarioSpec(days=1, seed=4, accounts=60, trades_per_day=1_500))
    assert not first.trades.equals(other.trades)


# --- referential integrity --------------------------------------------------------------------------

def test_every_fill_links_to_an_earlier_new_order_of_that_account(scenario):
    new = scenario.orders.filter(pl.col(Order.EVENT) == NEW)
    assert new[Order.ORDER_ID].n_unique() == new.height
    for order_col, account_col, side in ((Trade.BUYER_ORDER_ID, Trade.BUYER_ID, BUY),
                                         (Trade.SELLER_ORDER_ID, Trade.SELLER_ID, SELL)):
        joined = scenario.trades.join(
            new.select(Order.ORDER_ID, pl.col(Order.TIMESTAMP).alias("placed"), pl.col(Order.USER_ID).alias("owner"),
                       pl.col(Order.SIDE).alias("order_side"), pl.col(Order.PRICE).alias("limit"),
                       pl.col(Order.SYMBOL).alias("order_symbol")),
            left_on=order_col, right_on=Order.ORDER_ID, how="left")
        assert joined["placed"].null_count() == 0
        assert (joined["placed"] <= joined[Trade.TIMESTAMP]).all()
        assert (joined["owner"] == joined[account_col]).all()
        assert (joined["order_side"] == side).all() and (joined["order_symbol"] == joined[Trade.SYMBOL]).all()
        makers = joined.filter(pl.col(Trade.SIDE) != side)  # the resting side trades at its limit price
        assert (makers["limit"] == makers[Trade.PRICE]).all()


def test_cancels_follow_their_new_and_only_for_unfilled_rest(scenario):
    orders = _new_and_cancel(scenario.orders).join(_filled(scenario.trades), on=Order.ORDER_ID, how="left")
    orders = orders.with_columns(pl.col("filled").fill_null(0.0))
    assert scenario.orders.filter(pl.col(Order.EVENT) == CANCEL)[Order.ORDER_ID].n_unique() == \
        scenario.orders.filter(pl.col(Order.EVENT) == CANCEL).height
    cancelled = orders.filter(pl.col("cancelled_at").is_not_null())
    assert (cancelled["cancelled_at"] > cancelled[Order.TIMESTAMP]).all()
    assert (cancelled["filled"] < cancelled[Order.QUANTITY] - 1e-12).all()
    assert (orders["filled"] <= orders[Order.QUANTITY] + 1e-9).all()
    market = orders.filter(pl.col(Order.ORDER_TYPE) == "market")
    assert market[Order.PRICE].null_count() == market.height
    assert ((market["filled"] - market[Order.QUANTITY]).abs() < 1e-9).all()


def _book_at_minute_ends(scenario, spec: ScenarioSpec) -> pl.DataFrame:
    """Best live bid and ask per symbol at every 1-minute bar end of the scenario (null: that side empty).

    A resting order (one with a price) is live from its `new` until its cancel or the trade that completes
    it (its fills, through buyer / seller order ids, add up to its quantity), [new, end): it counts at a bar
    end e with new <= e < end. Each live interval is exploded into the bar ends it spans."""
    minute, tick = datetime.timedelta(minutes=1), datetime.timedelta(microseconds=1)
    start = datetime.datetime.combine(spec.start_date, datetime.time(), tzinfo=datetime.UTC)
    end = start + datetime.timedelta(days=spec.days)
    new = scenario.orders.filter((pl.col(Order.EVENT) == NEW) & pl.col(Order.PRICE).is_not_null())
    cancelled = scenario.orders.filter(pl.col(Order.EVENT) == CANCEL).group_by(Order.ORDER_ID).agg(
        pl.col(Order.TIMESTAMP).min().alias("cancelled_at"))
    legs = pl.concat([scenario.trades.select(pl.col(col).alias(Order.ORDER_ID), Trade.TIMESTAMP, Trade.QUANTITY)
                      for col in (Trade.BUYER_ORDER_ID, Trade.SELLER_ORDER_ID)])
    completed = (legs.join(new.select(Order.ORDER_ID, pl.col(Order.QUANTITY).alias("size")), on=Order.ORDER_ID)
                 .sort(Trade.TIMESTAMP)
                 .filter(pl.col(Trade.QUANTITY).cum_sum().over(Order.ORDER_ID) >= pl.col("size") - 1e-9)
                 .group_by(Order.ORDER_ID).agg(pl.col(Trade.TIMESTAMP).min().alias("completed_at")))
    live = (new.join(cancelled, on=Order.ORDER_ID, how="left").join(completed, on=Order.ORDER_ID, how="left")
            .with_columns(pl.min_horizontal("cancelled_at", "completed_at").fill_null(end).alias("end"))
            .with_columns((pl.col(Order.TIMESTAMP) - tick).dt.truncate("1m").dt.offset_by("1m").alias("first"),
                          (pl.col("end") - tick).dt.truncate("1m").alias("last"))
            .filter(pl.col("last") >= pl.col("first")))
    exploded = live.select(Order.SYMBOL, Order.SIDE, Order.PRICE,
                           pl.datetime_ranges("first", "last", "1m").alias("bar_end")).explode("bar_end")
    best = exploded.group_by(Order.SYMBOL, "bar_end").agg(
        pl.col(Order.PRICE).filter(pl.col(Order.SIDE) == BUY).max().alias("bid"),
        pl.col(Order.PRICE).filter(pl.col(Order.SIDE) == SELL).min().alias("ask"))
    bar_ends = pl.DataFrame({"bar_end": pl.datetime_range(start + minute, end, "1m", eager=True)})
    grid = pl.DataFrame({Order.SYMBOL: list(spec.symbols)}).join(bar_ends, how="cross")
    return grid.join(best, on=[Order.SYMBOL, "bar_end"], how="left")


@pytest.mark.parametrize("which", ["scenario", "clean"])
def test_the_live_book_is_never_crossed_at_bar_ends(which, request):
    # A limit order that crosses the spread executes at once on a venue: only its rest, if any, rests,
    # on its own side. So the best live bid stays below the best live ask.
    spec = SMALL if which == "scenario" else CLEAN
    book = _book_at_minute_ends(request.getfixturevalue(which), spec)
    assert book.height == len(spec.symbols) * 24 * 60 * spec.days
    two_sided = book.filter(pl.col("bid").is_not_null() & pl.col("ask").is_not_null())
    assert two_sided.height > 0.99 * book.height  # market makers quote both sides all day
    crossed = two_sided.filter(pl.col("bid") >= pl.col("ask"))
    assert crossed.height / book.height < 0.005, crossed.head()  # an abuse episode might, for an instant
    if which == "clean":
        assert crossed.height == 0, crossed.head()
    # ... and the quotes follow the mid: the quoted spread stays a few basis points wide.
    spread_bps = (two_sided["ask"] - two_sided["bid"]) / ((two_sided["ask"] + two_sided["bid"]) / 2) * 10_000
    assert 0 < spread_bps.median() < 50


# --- realistic, unlabelled background ----------------------------------------------------------------

def test_clean_scenario_has_no_labels_and_no_self_trades(clean):
    assert clean.labels.height == 0 and dict(clean.labels.schema) == LABEL_SCHEMA
    assert clean.trades.filter(pl.col(Trade.BUYER_ID) == pl.col(Trade.SELLER_ID)).height == 0


def test_clean_scenario_has_market_makers_that_cancel_most_quotes_symmetrically(clean):
    events = clean.orders.group_by(Order.USER_ID).agg(
        (pl.col(Order.EVENT) == NEW).sum().alias("new"),
        (pl.col(Order.EVENT) == CANCEL).sum().alias("cancels"),
        ((pl.col(Order.EVENT) == CANCEL) & (pl.col(Order.SIDE) == BUY)).sum().alias("bid_cancels"),
        ((pl.col(Order.EVENT) == CANCEL) & (pl.col(Order.SIDE) == SELL)).sum().alias("ask_cancels"),
    )
    trades = pl.concat([clean.trades.select(pl.col(c).alias(Order.USER_ID)) for c in (Trade.BUYER_ID, Trade.SELLER_ID)])
    events = events.join(trades.group_by(Order.USER_ID).len("trades"), on=Order.USER_ID, how="left")
    makers = events.filter((pl.col("new") >= 1_000) & (pl.col("cancels") > 0.9 * pl.col("new"))
                           & (pl.col("new") > 3 * pl.col("trades")))
    assert makers.height >= 3
    ratio = makers["bid_cancels"] / makers["ask_cancels"]
    assert ((ratio > 0.9) & (ratio < 1.1)).all()


def test_clean_scenario_has_an_organic_rally_of_many_independent_buyers(clean):
    buckets = (clean.trades
               .group_by(Trade.SYMBOL, pl.col(Trade.TIMESTAMP).dt.truncate("30m").alias("bucket"))
               .agg((pl.col(Trade.SIDE) == BUY).sum().alias("buys"), (pl.col(Trade.SIDE) == SELL).sum().alias("sells"),
                    pl.col(Trade.BUYER_ID).filter(pl.col(Trade.SIDE) == BUY).n_unique().alias("buyers")))
    top = buckets.sort(pl.col("buys").cast(pl.Int64) - pl.col("sells"), descending=True).row(0, named=True)
    assert top["buys"] > 2 * top["sells"]
    assert top["buyers"] >= min(60, 0.4 * CLEAN.accounts)  # a crowd of independent takers
    prices = clean.trades.filter(pl.col(Trade.SYMBOL) == top[Trade.SYMBOL])
    hour = datetime.timedelta(hours=1)
    before = prices.filter(pl.col(Trade.TIMESTAMP).is_between(top["bucket"] - hour, top["bucket"]))[Trade.PRICE]
    after = prices.filter(pl.col(Trade.TIMESTAMP).is_between(top["bucket"], top["bucket"] + hour))[Trade.PRICE]
    assert after.max() > 1.02 * before.median()


def _frequent_counterparties(trades: pl.DataFrame) -> pl.DataFrame:
    """Pairs of accounts that met at least 15 times in a symbol, at 5+ prices, with a net position change of
    at least 30 % of their gross mutual volume: counterparties through the book, not a wash pair."""
    pair = trades.filter(pl.col(Trade.BUYER_ID) != pl.col(Trade.SELLER_ID)).with_columns(
        pl.min_horizontal(Trade.BUYER_ID, Trade.SELLER_ID).alias("a"),
        pl.max_horizontal(Trade.BUYER_ID, Trade.SELLER_ID).alias("b"))
    a_bought = pl.when(pl.col(Trade.BUYER_ID) == pl.col("a")).then(Trade.QUANTITY).otherwise(-pl.col(Trade.QUANTITY))
    return (pair.group_by(Trade.SYMBOL, "a", "b")
            .agg(pl.len().alias("trades"), pl.col(Trade.QUANTITY).sum().alias("gross"),
                 a_bought.sum().abs().alias("net"), pl.col(Trade.PRICE).n_unique().alias("prices"),
                 pl.col(Trade.QUANTITY).n_unique().alias("sizes"))
            .filter((pl.col("trades") >= 15) & (pl.col("net") >= 0.3 * pl.col("gross")) & (pl.col("prices") >= 5)))


def test_clean_scenario_has_accounts_that_often_meet_as_counterparties_at_changing_prices(clean):
    pairs = _frequent_counterparties(clean.trades)
    assert pairs.height >= 1
    assert (pairs["sizes"] >= 5).any()  # varying sizes, not one quantity handed back and forth
    new = clean.orders.filter(pl.col(Order.EVENT) == NEW)
    for row in pairs.iter_rows(named=True):
        mutual = clean.trades.filter((pl.col(Trade.SYMBOL) == row[Trade.SYMBOL])
                                     & pl.col(Trade.BUYER_ID).is_in([row["a"], row["b"]])
                                     & pl.col(Trade.SELLER_ID).is_in([row["a"], row["b"]]))
        assert mutual[Trade.PRICE].max() > mutual[Trade.PRICE].min()  # the market moved between their trades
        # ... and each of their trades is a genuine book trade: a resting order of one, hit by the other.
        for order_col, account_col in ((Trade.BUYER_ORDER_ID, Trade.BUYER_ID), (Trade.SELLER_ORDER_ID, Trade.SELLER_ID)):
            owners = mutual.join(new.select(Order.ORDER_ID, pl.col(Order.USER_ID).alias("owner")),
                                 left_on=order_col, right_on=Order.ORDER_ID, how="left")
            assert (owners["owner"] == owners[account_col]).all()


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_frequent_counterparties_on_a_clean_day_raise_no_wash_or_circular_finding(seed):
    clean_day = generate_scenario(dataclasses.replace(CLEAN, seed=seed))
    assert _frequent_counterparties(clean_day.trades).height >= 1
    inputs = DetectionInputs(trades=clean_day.trades, orders=clean_day.orders)
    assert detect_wash_trading(inputs, WashTradingSettings()).is_empty()
    assert detect_circular_trading(inputs, CircularTradingSettings()).is_empty()


# --- labelled episodes ------------------------------------------------------------------------------------

def test_every_trade_level_pattern_is_labelled(scenario):
    assert set(scenario.labels[Label.PATTERN]) == {p.value for p in TRADE_LEVEL_PATTERNS}
    assert scenario.labels[Label.EPISODE_ID].n_unique() == scenario.labels.height
    assert set(scenario.labels[Label.SYMBOL]) <= set(SMALL.symbols)


def test_wash_trades_leave_positions_unchanged_at_one_price(scenario):
    labels = _labels_of(scenario, Pattern.WASH_TRADING)
    assert {len(_users(label)) for label in labels} == {1, 2}  # self-trades and a colluding pair
    for label in labels:
        users = _users(label)
        trades = _episode_trades(scenario, label)
        if len(users) == 1:
            assert (trades[Trade.BUYER_ID] == trades[Trade.SELLER_ID]).all() and trades.height >= 3
        else:
            bought = trades.group_by(Trade.BUYER_ID).agg(pl.col(Trade.QUANTITY).sum())
            sold = trades.group_by(Trade.SELLER_ID).agg(pl.col(Trade.QUANTITY).sum())
            assert bought.height == sold.height == 2
            assert abs(bought[Trade.QUANTITY].sum() - sold[Trade.QUANTITY].sum()) < 1e-9
            assert bought.sort(Trade.BUYER_ID)[Trade.QUANTITY].to_list() == \
                pytest.approx(sold.sort(Trade.SELLER_ID)[Trade.QUANTITY].to_list())
        assert trades[Trade.PRICE].max() / trades[Trade.PRICE].min() < 1.002


def test_circular_trades_form_a_cycle_through_the_ring(scenario):
    for label in _labels_of(scenario, Pattern.CIRCULAR_TRADING):
        ring = _users(label)
        assert len(ring) >= 3
        trades = _episode_trades(scenario, label)
        edges = set(zip(trades[Trade.SELLER_ID], trades[Trade.BUYER_ID]))
        reachable, frontier = {ring[0]}, [ring[0]]
        while frontier:
            node = frontier.pop()
            for seller, buyer in edges:
                if seller == node and buyer not in reachable:
                    reachable.add(buyer)
                    frontier.append(buyer)
        assert reachable == set(ring)
        assert any(buyer == ring[0] for _, buyer in edges)  # and back to the start: a cycle
        assert trades[Trade.QUANTITY].max() / trades[Trade.QUANTITY].min() < 1.01
        assert trades[Trade.PRICE].max() / trades[Trade.PRICE].min() < 1.002


def test_pump_window_shows_accumulation_spike_dump_and_collapse(scenario):
    for label in _labels_of(scenario, Pattern.PUMP_AND_DUMP):
        symbol_trades = scenario.trades.filter(pl.col(Trade.SYMBOL) == label[Label.SYMBOL])
        volume = symbol_trades.group_by(pl.col(Trade.TIMESTAMP).dt.truncate("5m").alias("bucket")).agg(
            pl.col(Trade.QUANTITY).sum().alias("volume"))
        inside = volume["bucket"].is_between(label[Label.START], label[Label.END])
        assert volume.filter(inside)["volume"].max() > 5 * volume.filter(~inside)["volume"].median()
        window = _in_window(scenario.trades, label)
        opening, peak = window[Trade.PRICE][0], window[Trade.PRICE].max()
        assert peak > 1.15 * opening
        assert window[Trade.PRICE].tail(5).mean() - opening < 0.5 * (peak - opening)  # collapsed back
        # Organisers (who also trade normally) buy low before the spike and sell high into it.
        halfway = window.filter(pl.col(Trade.PRICE) > (opening + peak) / 2)[Trade.TIMESTAMP][0]
        pump_start = halfway - datetime.timedelta(minutes=5)
        organisers = _users(label)
        bought = window.filter(pl.col(Trade.BUYER_ID).is_in(organisers) & (pl.col(Trade.TIMESTAMP) < pump_start))
        sold = window.filter(pl.col(Trade.SELLER_ID).is_in(organisers) & (pl.col(Trade.TIMESTAMP) >= pump_start))
        assert sold[Trade.QUANTITY].sum() > 0.5 * bought[Trade.QUANTITY].sum() > 0
        assert sold[Trade.PRICE].mean() > 1.1 * bought[Trade.PRICE].mean()


def test_spoofs_cancel_a_large_order_within_a_second_of_an_opposite_fill(scenario):
    for label in _labels_of(scenario, Pattern.SPOOFING):
        [user] = _users(label)
        median = scenario.trades.filter(pl.col(Trade.SYMBOL) == label[Label.SYMBOL])[Trade.QUANTITY].median()
        large = _new_and_cancel(_in_window(scenario.orders, label)).filter(
            (pl.col(Order.USER_ID) == user) & (pl.col(Order.QUANTITY) > 5 * median)
            & pl.col("cancelled_at").is_not_null())
        trades = _in_window(scenario.trades, label)
        spoofs = 0
        for order in large.to_dicts():
            opposite = Trade.SELLER_ID if order[Order.SIDE] == BUY else Trade.BUYER_ID
            fills = trades.filter((pl.col(opposite) == user)
                                  & pl.col(Trade.TIMESTAMP).is_between(order[Order.TIMESTAMP], order["cancelled_at"]))
            spoofs += fills.height > 0 and order["cancelled_at"] - fills[Trade.TIMESTAMP].max() <= ONE_SECOND
        assert spoofs >= 2


def test_layers_are_cancelled_together_after_an_opposite_fill(scenario):
    for label in _labels_of(scenario, Pattern.LAYERING):
        [user] = _users(label)
        orders = _new_and_cancel(_in_window(scenario.orders, label)).filter(
            (pl.col(Order.USER_ID) == user) & pl.col("cancelled_at").is_not_null()).sort("cancelled_at")
        trades = _in_window(scenario.trades, label)
        cycles = 0
        # Cancels less than a second apart belong to one layered cycle.
        orders = orders.with_columns(
            (pl.col("cancelled_at").diff() > ONE_SECOND).fill_null(True).cum_sum().alias("cycle"))
        for _, layers in orders.group_by("cycle"):
            if layers.height < 3 or layers[Order.SIDE].n_unique() != 1 or layers[Order.PRICE].n_unique() < 3:
                continue
            opposite = Trade.SELLER_ID if layers[Order.SIDE][0] == BUY else Trade.BUYER_ID
            fills = trades.filter((pl.col(opposite) == user) & pl.col(Trade.TIMESTAMP).is_between(
                layers[Order.TIMESTAMP].max(), layers["cancelled_at"].min()))
            cycles += fills.height > 0 and layers["cancelled_at"].min() - fills[Trade.TIMESTAMP].max() <= ONE_SECOND
        assert cycles >= 2


def test_quote_stuffing_bursts_hundreds_of_messages_a_second_mostly_cancelled(scenario):
    for label in _labels_of(scenario, Pattern.QUOTE_STUFFING):
        [user] = _users(label)
        events = _in_window(scenario.orders, label).filter(pl.col(Order.USER_ID) == user)
        ts = events[Order.TIMESTAMP].to_numpy()
        in_next_second = np.searchsorted(ts, ts + np.timedelta64(1, "s")) - np.arange(len(ts))
        assert in_next_second.max() >= 100
        orders = _new_and_cancel(events)
        assert orders["cancelled_at"].is_not_null().mean() > 0.9
        lifetimes = (orders["cancelled_at"] - orders[Order.TIMESTAMP]).drop_nulls()
        assert lifetimes.median() < datetime.timedelta(milliseconds=50)
        fills = _in_window(scenario.trades, label).filter(
            (pl.col(Trade.BUYER_ID) == user) | (pl.col(Trade.SELLER_ID) == user))
        assert fills.height <= 0.05 * orders.height


def test_excessive_trader_trades_far_more_often_than_anyone_else(scenario):
    for label in _labels_of(scenario, Pattern.EXCESSIVE_TRADING):
        [user] = _users(label)
        window = _in_window(scenario.trades, label)
        counts = pl.concat([window.select(pl.col(c).alias("account")) for c in (Trade.BUYER_ID, Trade.SELLER_ID)]) \
            .group_by("account").len()
        mine = counts.filter(pl.col("account") == user)["len"].item()
        assert mine >= 1_000
        assert mine > 3 * counts.filter(pl.col("account") != user)["len"].max()


def test_labelled_accounts_are_not_market_makers_and_windows_are_tight(scenario):
    # Market makers: the heaviest order flow, quoting and cancelling around the clock.
    makers = scenario.orders.group_by(Order.USER_ID).agg(
        pl.len().alias("events"),
        pl.col(Order.TIMESTAMP).dt.hour().n_unique().alias("hours"),
        (pl.col(Order.EVENT) == CANCEL).mean().alias("cancel_share"),
    ).filter((pl.col("hours") >= 20) & (pl.col("cancel_share") > 0.45)
             & (pl.col("events") > 0.5 * pl.col("events").max()))[Order.USER_ID]
    assert makers.len() >= 3
    labelled = set(scenario.labels[Label.USER_IDS].str.split(USER_IDS_SEPARATOR).explode())
    assert not labelled & set(makers)
    durations = scenario.labels.select(pl.col(Label.PATTERN), (pl.col(Label.END) - pl.col(Label.START)).alias("d"))
    long_patterns = [Pattern.PUMP_AND_DUMP.value, Pattern.EXCESSIVE_TRADING.value]
    short = durations.filter(~pl.col(Label.PATTERN).is_in(long_patterns))
    assert short["d"].max() < datetime.timedelta(hours=1)
    assert durations["d"].max() < datetime.timedelta(hours=8)


def test_unknown_single_symbol_gets_a_profile_and_all_patterns():
    spec = ScenarioSpec(days=1, seed=2, accounts=60, symbols=("FOOUSDT",), trades_per_day=1_500)
    result = generate_scenario(spec)
    assert set(result.labels[Label.PATTERN]) == {p.value for p in TRADE_LEVEL_PATTERNS}
    ticks = result.trades[Trade.PRICE].to_numpy() / profile_for("FOOUSDT").tick
    assert np.abs(ticks - np.round(ticks)).max() < 1e-6


# --- files ------------------------------------------------------------------------------------------

def test_write_scenario_writes_three_csv_files_that_read_back(scenario, tmp_path):
    paths = write_scenario(scenario, tmp_path / "out")
    assert set(paths) == {"trades", "orders", "labels"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["labels.csv", "orders.csv", "trades.csv"]
    first_row = paths["trades"].read_text().splitlines()[1]
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|\+00:00)", first_row)
    for name, frame in (("trades", scenario.trades), ("orders", scenario.orders), ("labels", scenario.labels)):
        back = pl.read_csv(paths[name], try_parse_dates=True)
        assert back.shape == frame.shape and back.columns == frame.columns
    back = pl.read_csv(paths["trades"], try_parse_dates=True, schema_overrides={Trade.TRADE_ID: pl.String})
    assert back[Trade.TIMESTAMP].dtype == pl.Datetime("us", "UTC")
    assert back[Trade.TIMESTAMP].equals(scenario.trades[Trade.TIMESTAMP])


@pytest.mark.slow
def test_a_million_trades(request):
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("slow: run with -m slow")
    spec = ScenarioSpec(days=10, seed=1, trades_per_day=100_000)
    started = time.perf_counter()
    result = generate_scenario(spec)
    elapsed = time.perf_counter() - started
    request.node.user_properties.append(("generation_seconds", round(elapsed, 1)))
    assert 900_000 <= result.trades.height <= 1_400_000
    assert result.labels.height >= 10 * len(TRADE_LEVEL_PATTERNS)
    book = _book_at_minute_ends(result, spec)
    assert book.filter(pl.col("bid") >= pl.col("ask")).height < 0.005 * book.height
