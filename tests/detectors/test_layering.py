"""Layering on hand-made order books, its legitimate look-alikes, and a generated day.

The book: background accounts rest orders of size 1 (the symbol's typical resting order is 1). The layerer `l`
stacks four size-3 buy orders one tick apart, gets its size-1 sell filled, and pulls the stack within 30 ms.
"""
import json

import numpy as np
import polars as pl
import pytest

from surveillance_pipeline.contract import ORDER_SCHEMA, TRADE_SCHEMA, Pattern
from surveillance_pipeline.detectors.base import FINDING_SCHEMA, DetectionInputs
from surveillance_pipeline.detectors.layering import LayeringSettings, detect_layering
from tests.detectors.conftest import (
    BTC, Book, assert_episodes_found, assert_no_findings, at, detect_generated, order_book_day,
)
from tests.detectors.conftest import background as background_orders


def background() -> Book:
    """A book with resting size-1 orders of other accounts, sells at 98 and buys at 102."""
    return background_orders(Book(), sell_price=98.0, buy_price=102.0)


def layer_cycle(book: Book, start: float, k: int, levels: int = 4, cancel_gap: float = 0.01,
                side: str = "buy", fill: bool = True, place_gap: float = 0.1, hold: float = 2.0,
                cancel_after: float = 0.2, genuine: float = 1.0) -> None:
    """`levels` size-3 orders on `side`, `place_gap` s apart, one tick apart; the genuine order (size `genuine`) on
    the other side filled `hold` s after the first layer; the layers cancelled `cancel_after` s after that fill,
    cancel_gap seconds apart."""
    sign = -1 if side == "buy" else 1
    for level in range(levels):
        book.place(start + place_gap * level, f"L{k}.{level}", "l", side, 100.0 + sign * (0.5 + 0.1 * level), 3.0)
    other = "sell" if side == "buy" else "buy"
    book.place(start + 0.5, f"G{k}", "l", other, 100.0 - sign * 0.1, genuine)
    if fill:
        book.fill(start + hold, f"G{k}", "x", genuine)
    for level in range(levels):
        book.cancel(start + hold + cancel_after + cancel_gap * level, f"L{k}.{level}")


def hft_market_maker(seconds: float = 600.0, orders_per_second: float = 15.0, life_s: float = 0.3,
                     fill_probability: float = 0.02, user: str = "h", seed: int = 7) -> DetectionInputs:
    """The background book plus a high-frequency market maker quoting bid and ask independently: each quote on its
    own Poisson clock (orders_per_second in all, either side at random), 1-3 ticks from 100, sizes 1-3, pulled
    after about `life_s` (lognormal) unless a taker `x` hits it first (`fill_probability`). For a moment one side is
    often thin or empty while the other holds quotes at two or three successive prices."""
    rng = np.random.default_rng(seed)
    n = int(seconds * orders_per_second)
    placed = np.sort(rng.uniform(0.0, seconds, n))
    buy = rng.random(n) < 0.5
    ticks = rng.integers(1, 4, n)
    ended = placed + life_s * np.exp(rng.normal(0.0, 0.3, n))
    hit = rng.random(n) < fill_probability
    stamps = pl.Series([at(x) for x in placed], dtype=ORDER_SCHEMA["timestamp"])
    ends = pl.Series([at(x) for x in ended], dtype=ORDER_SCHEMA["timestamp"])
    new = pl.DataFrame({
        "order_id": [f"h{i}" for i in range(n)], "timestamp": stamps, "user_id": user, "symbol": BTC,
        "side": np.where(buy, "buy", "sell"), "price": np.round(np.where(buy, 100.0 - 0.1 * ticks,
                                                                           100.0 + 0.1 * ticks), 1),
        "quantity": rng.integers(1, 4, n).astype(float), "event": "new", "order_type": "limit",
        "market_type": "spot"}).with_columns(ends.alias("ended"), pl.Series("hit", hit))
    cancels = new.filter(~pl.col("hit")).with_columns(pl.col("ended").alias("timestamp"),
                                                      pl.lit("cancel").alias("event"))
    is_bid = pl.col("side") == "buy"
    trades = new.filter(pl.col("hit")).select(
        pl.format("th{}", pl.int_range(pl.len())).alias("trade_id"), pl.col("ended").alias("timestamp"), "symbol",
        pl.when(is_bid).then(pl.lit("sell")).otherwise(pl.lit("buy")).alias("side"), "price", "quantity",
        pl.when(is_bid).then(pl.lit(user)).otherwise(pl.lit("x")).alias("buyer_id"),
        pl.when(is_bid).then(pl.lit("x")).otherwise(pl.lit(user)).alias("seller_id"),
        pl.when(is_bid).then(pl.col("order_id")).otherwise(pl.format("x{}", "order_id")).alias("buyer_order_id"),
        pl.when(is_bid).then(pl.format("x{}", "order_id")).otherwise(pl.col("order_id")).alias("seller_order_id"),
        pl.lit("spot").alias("market_type"), (pl.col("price") * pl.col("quantity")).alias("quote_quantity"),
        pl.lit(0.0).alias("fee"))
    base = background_orders(Book(), seconds=seconds).inputs()
    return DetectionInputs(
        trades=pl.concat([base.trades, trades.cast(TRADE_SCHEMA)]).sort("timestamp"),
        orders=pl.concat([base.orders] + [frame.select(list(ORDER_SCHEMA)).cast(ORDER_SCHEMA)
                                          for frame in (new, cancels)]).sort("timestamp"))


def test_stacked_levels_pulled_after_an_opposite_fill_fire_once_per_episode():
    book = background()
    layer_cycle(book, 0.0, 0)
    layer_cycle(book, 60.0, 1, side="sell")
    findings = detect_layering(book.inputs(), LayeringSettings())
    assert findings.schema == FINDING_SCHEMA
    assert findings.height == 1
    row = findings.row(0, named=True)
    assert row["pattern"] == Pattern.LAYERING.value and row["symbol"] == BTC and row["user_ids"] == ["l"]
    assert row["window_start"] == at(0.0)  # the first layer
    assert row["window_end"] == at(60.0 + 2.2 + 0.03)  # the last layer's cancel
    metrics = json.loads(row["metrics"])
    assert metrics["cycles"] == 2 and metrics["median_levels"] == 4
    assert metrics["median_layered_quantity"] == pytest.approx(12.0)
    assert metrics["layered_vs_fill"] == pytest.approx(12.0)
    assert metrics["stack_vs_book_median"] == pytest.approx(12.0)
    assert metrics["median_cancel_span_ms"] == pytest.approx(30.0)
    assert metrics["median_cancel_after_fill_ms"] == pytest.approx(200.0)
    assert metrics["median_placement_span_ms"] == pytest.approx(300.0)
    assert metrics["min_side_imbalance"] is None  # once the genuine 1 traded, nothing was left on its side
    assert metrics["share_of_executions"] == 1.0 and metrics["two_sided_share"] < 0.1
    assert {"order:L0.0", "order:L0.3", "order:L1.3", "trade:t0", "trade:t1"} <= set(row["evidence"])
    assert "4 successive prices" in row["explanation"] and "200 ms after that fill" in row["explanation"]


def test_market_maker_ladders_on_both_sides_are_not_layering():
    """Three levels a side, size 3, all six pulled 50 ms after each fill and requoted: stacks, fills, cancels
    together, but the ladder on the filled side is as deep as the other one."""
    book = background()
    for k in range(20):
        t = 20.0 * k
        for level in range(3):
            book.place(t, f"b{k}.{level}", "m", "buy", 99.9 - 0.1 * level, 3.0)
            book.place(t, f"a{k}.{level}", "m", "sell", 100.1 + 0.1 * level, 3.0)
        end = t + 19.9
        if k % 2 == 0:
            book.fill(t + 10.0, f"a{k}.0", "x", 1.0)
            end = t + 10.05
        for level in range(3):
            book.cancel(end, f"b{k}.{level}")
            book.cancel(end, f"a{k}.{level}")
    assert detect_layering(book.inputs(), LayeringSettings()).is_empty()
    assert detect_layering(book.inputs(), LayeringSettings(min_side_imbalance=0.0)).height == 1


@pytest.mark.parametrize("change", [
    {"cancel_after": 8.0},  # removed 8 s after the trade, not within 3 s
    {"cancel_gap": 0.75},  # removed one by one over 2.25 s, a hand clicking through the levels
    {"hold": 70.0},  # the stack stood 70 s before the execution came
    {"place_gap": 4.0, "hold": 14.0},  # the stack built level by level over 12 s
    {"genuine": 6.0},  # the genuine passive order half the stack: not a quote on the other side once executed
])
def test_stacks_removed_once_the_trade_has_taken_place_fire(change):
    book = background()
    layer_cycle(book, 0.0, 0, **change)
    layer_cycle(book, 200.0, 1, **change)
    findings = detect_layering(book.inputs(), LayeringSettings())
    assert findings.height == 1 and json.loads(findings["metrics"][0])["cycles"] == 2


def test_hft_market_maker_quoting_bid_and_ask_independently_is_not_layering():
    """Sub-second quotes on each side on their own clocks: now and then quotes at three prices on one side are
    pulled just after a fill on the other while that side is momentarily empty (one such moment passes every
    per-cycle test), but the maker's quotes stand on both sides most of the time and it trades with hundreds of
    fills around it."""
    inputs = hft_market_maker()
    assert detect_layering(inputs, LayeringSettings()).is_empty()
    moments = detect_layering(inputs, LayeringSettings(min_share_of_executions=0.0, max_two_sided_share=1.0))
    assert moments.height >= 1
    metrics = json.loads(moments["metrics"][0])
    assert metrics["share_of_executions"] < 0.2 and metrics["executed_orders"] >= 10


@pytest.mark.parametrize("change, reason", [
    ({"levels": 2}, "two levels are an ordinary pair"),
    ({"cancel_gap": 5.0}, "layers pulled one by one over 15 s, not together"),
    ({"fill": False}, "no execution on the other side"),
])
def test_stacks_without_the_full_sequence_do_not_fire(change, reason):
    book = background()
    layer_cycle(book, 0.0, 0, **change)
    layer_cycle(book, 60.0, 1, **change)
    assert detect_layering(book.inputs(), LayeringSettings()).is_empty(), reason


def test_fleeting_orders_around_a_coincident_fill_are_not_layers():
    """Small orders that appear 5 ms before a fill of the same account (a quote stuffer's) cannot have induced it."""
    book = background()
    book.place(0.0, "G", "q", "sell", 100.1, 1.0)
    for level in range(3):
        book.place(9.995, f"f{level}", "q", "buy", 99.5 - 0.1 * level, 3.0)
    book.fill(10.0, "G", "x", 1.0)
    for level in range(3):
        book.cancel(10.002, f"f{level}")
    assert detect_layering(book.inputs(), LayeringSettings()).is_empty()
    assert detect_layering(book.inputs(), LayeringSettings(min_rest_before_fill_ms=0)).height == 1


def test_without_order_events_or_when_disabled_it_stands_aside():
    book = background()
    layer_cycle(book, 0.0, 0)
    inputs = book.inputs()
    assert detect_layering(DetectionInputs(trades=inputs.trades), LayeringSettings()).is_empty()
    assert detect_layering(inputs, LayeringSettings(enabled=False)).is_empty()


# --- a generated day ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [3, 7])
def test_generated_day_layering_episodes_are_found(seed):
    findings, labels = detect_generated(detect_layering, LayeringSettings(), order_book_day(seed))
    assert_episodes_found(findings, labels, Pattern.LAYERING)


def test_clean_generated_day_gives_no_layering():
    assert_no_findings(*detect_generated(detect_layering, LayeringSettings(), order_book_day(4, clean=True)))
