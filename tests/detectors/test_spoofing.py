"""Spoofing on hand-made order books, its legitimate look-alikes, and a generated day.

The book: background accounts rest orders of size 1 (the symbol's typical resting order is 1). The spoofer `s`
trades size 1 for real (its normal size) and rests size-10 orders it cancels after its own fill on the other side.
"""
import json

import polars as pl
import pytest

from surveillance_pipeline.contract import TRADE_SCHEMA, Pattern
from surveillance_pipeline.detectors.base import FINDING_SCHEMA, DetectionInputs
from surveillance_pipeline.detectors.layering import LayeringSettings, detect_layering
from surveillance_pipeline.detectors.orderbook import (
    book_tables, executed_orders_between, resting_quantity_before, two_sided_share,
)
from surveillance_pipeline.detectors.spoofing import SpoofingSettings, detect_spoofing
from tests.detectors.conftest import (
    BTC, Book, assert_episodes_found, assert_no_findings, at, background, detect_generated, order_book_day,
)


def spoof_cycle(book: Book, start: float, k: int, fake_side: str = "buy", fake_qty: float = 10.0,
                cancel_after_fill: float = 0.3, user: str = "s") -> None:
    """A large order on fake_side, a size-1 genuine order on the other side filled 2 s later, the large one
    cancelled cancel_after_fill seconds after that fill."""
    genuine_side = "sell" if fake_side == "buy" else "buy"
    book.place(start, f"L{user}{k}", user, fake_side, 99.5 if fake_side == "buy" else 100.5, fake_qty)
    book.place(start + 0.5, f"G{user}{k}", user, genuine_side, 100.1 if genuine_side == "sell" else 99.9, 1.0)
    book.fill(start + 2.0, f"G{user}{k}", "x", 1.0)
    book.cancel(start + 2.0 + cancel_after_fill, f"L{user}{k}")


def spoofed_book(cycles: int = 3, **change) -> Book:
    """The background book with `cycles` spoof cycles of `s` a minute apart (spoof_cycle's `change`s)."""
    book = background(Book())
    for k in range(cycles):
        spoof_cycle(book, 60.0 * k, k, **change)
    return book


def test_repeated_large_orders_pulled_after_opposite_fills_fire_once():
    book = spoofed_book()
    findings = detect_spoofing(book.inputs(), SpoofingSettings())
    assert findings.schema == FINDING_SCHEMA
    assert findings.height == 1
    row = findings.row(0, named=True)
    assert row["pattern"] == Pattern.SPOOFING.value and row["symbol"] == BTC and row["user_ids"] == ["s"]
    assert row["window_start"] == at(0.0)  # the first large order
    assert row["window_end"] == at(120.0 + 2.3)  # the last cancel
    metrics = json.loads(row["metrics"])
    assert metrics["cycles"] == 3 and metrics["large_orders"] == 3
    assert metrics["size_vs_account_normal"] == pytest.approx(10.0)
    assert metrics["size_vs_book_median"] == pytest.approx(10.0)
    assert metrics["median_cancel_after_fill_ms"] == pytest.approx(300.0)
    assert metrics["large_filled_share"] == 0.0
    assert metrics["min_side_imbalance"] is None  # once the genuine 1 traded, nothing was left on its side
    assert metrics["genuine_orders"] == 3 and metrics["executed_orders"] == 3
    assert metrics["share_of_executions"] == 1.0
    assert metrics["two_sided_share"] < 0.1  # the genuine order stood 1.5 s beside each fake, within minutes
    assert {"order:Ls0", "order:Ls1", "order:Ls2", "trade:t0", "trade:t2"} <= set(row["evidence"])
    assert "10x its normal order size" in row["explanation"] and "300 ms after" in row["explanation"]
    assert "with nothing of its own resting on the other side" in row["explanation"]
    assert 0.5 < row["score"] <= 1.0


@pytest.mark.parametrize("lag", [10.0, 20.0, 30.0])
def test_fakes_kept_until_their_planned_rest_ends_after_the_fill_fire(lag):
    """The fake is pulled 10-30 s after the genuine fill (at the end of a planned rest), not within 3 s: once the
    trade is done the fake has no purpose left, whenever the timer pulls it."""
    findings = detect_spoofing(spoofed_book(cancel_after_fill=lag).inputs(), SpoofingSettings())
    assert findings.height == 1
    assert json.loads(findings["metrics"][0])["median_cancel_after_fill_ms"] == pytest.approx(lag * 1_000)


def test_fakes_partly_hit_while_resting_still_fire():
    """Someone hits 30 % of each fake while it rests: most of it was still withdrawn unexecuted."""
    book = background(Book())
    for k in range(3):
        spoof_cycle(book, 60.0 * k, k)
        book.fill(60.0 * k + 1.0, f"Ls{k}", "x", 3.0)
    findings = detect_spoofing(book.inputs(), SpoofingSettings())
    assert findings.height == 1
    metrics = json.loads(findings["metrics"][0])
    assert metrics["large_filled_share"] == pytest.approx(0.3)
    assert metrics["share_of_executions"] == 1.0  # the hit fakes are not counted as genuine trades
    assert detect_spoofing(book.inputs(), SpoofingSettings(max_filled_share=0.2)).is_empty()


def test_cancel_shortly_before_the_opposite_fill_counts_too():
    book = spoofed_book(2, cancel_after_fill=-0.4)  # pulled 400 ms before its genuine order fills
    findings = detect_spoofing(book.inputs(), SpoofingSettings())
    assert findings.height == 1
    assert json.loads(findings["metrics"][0])["median_cancel_after_fill_ms"] == pytest.approx(-400.0)
    assert "400 ms before" in findings["explanation"][0]


def test_cycles_far_apart_are_separate_episodes_and_lone_cycles_do_not_fire():
    book = background(Book(), seconds=4_000.0)
    for k, start in enumerate((0.0, 60.0, 3_000.0)):  # two close cycles, then one an hour later
        spoof_cycle(book, start, k)
    findings = detect_spoofing(book.inputs(), SpoofingSettings())
    assert findings.height == 1
    assert findings["window_end"][0] == at(60.0 + 2.3)
    assert detect_spoofing(book.inputs(), SpoofingSettings(min_cycles=1)).height == 2


def test_market_maker_requoting_both_sides_after_fills_is_not_spoofing():
    """Quotes of size 5 (5x the book's median) on both sides, both replaced 50 ms after every fill: >90 %
    cancelled, but sizes normal for the maker and nothing one-sided."""
    book = background(Book())
    for k in range(20):
        t = 20.0 * k
        book.place(t, f"mb{k}", "m", "buy", 99.9, 5.0)
        book.place(t, f"ma{k}", "m", "sell", 100.1, 5.0)
        if k % 4 == 0:
            book.fill(t + 10.0, f"ma{k}" if k % 8 else f"mb{k}", "x", 1.0)
            book.cancel(t + 10.05, f"mb{k}")
            book.cancel(t + 10.05, f"ma{k}")
        else:
            book.cancel(t + 19.9, f"mb{k}")
            book.cancel(t + 19.9, f"ma{k}")
    assert detect_spoofing(book.inputs(), SpoofingSettings()).is_empty()


def test_two_sided_large_quotes_are_not_one_sided_pressure():
    """The spoofer's pattern, but with an equally large order resting on the filled side too."""
    book = background(Book())
    for k in range(3):
        book.place(60.0 * k, f"H{k}", "s", "sell", 101.0, 10.0)
        spoof_cycle(book, 60.0 * k, k)
        book.cancel(60.0 * k + 2.3, f"H{k}")
    assert detect_spoofing(book.inputs(), SpoofingSettings()).is_empty()
    assert detect_spoofing(book.inputs(), SpoofingSettings(min_side_imbalance=0.5)).height == 1


def test_one_large_order_cancelled_once_after_the_market_moved_does_not_fire():
    book = background(Book())
    for k in range(3):  # the account's ordinary trading: size 1
        book.place(100.0 * k, f"n{k}", "h", "sell", 100.2, 1.0)
        book.fill(100.0 * k + 5.0, f"n{k}", "x", 1.0)
    spoof_cycle(book, 400.0, 0, user="h")  # once
    book.place(450.0, "big", "h", "buy", 99.0, 10.0)  # and a large order pulled after a move, with no fill
    book.cancel(451.0, "big")
    assert detect_spoofing(book.inputs(), SpoofingSettings()).is_empty()
    assert detect_spoofing(book.inputs(), SpoofingSettings(min_cycles=1)).height == 1  # the lone cycle


@pytest.mark.parametrize("change, reason", [
    ({"fake_qty": 2.0}, "not large against the account's normal size 1"),
    ({"cancel_after_fill": -5.0}, "pulled 5 s before the fill: not as the genuine order was being taken"),
])
def test_orders_that_are_not_large_or_not_pulled_quickly_do_not_fire(change, reason):
    book = spoofed_book(**change)
    assert detect_spoofing(book.inputs(), SpoofingSettings()).is_empty(), reason


def test_fakes_kept_long_after_the_fill_do_not_fire():
    """Cycles five minutes apart, each large order kept 90 s after the fill: pulled long after the trade was done,
    a new decision rather than the end of the scheme."""
    book = background(Book(), seconds=1_200.0)
    for k in range(3):
        spoof_cycle(book, 300.0 * k, k, cancel_after_fill=90.0)
    assert detect_spoofing(book.inputs(), SpoofingSettings()).is_empty()
    assert detect_spoofing(book.inputs(), SpoofingSettings(max_cancel_after_fill_ms=100_000)).height == 1


def test_market_maker_pulling_a_bigger_quote_after_its_other_quote_was_taken_is_not_spoofing():
    """A market maker quotes both sides all the time, mostly size 1, now and then a size-5 bid. Twice its ask is
    taken whole while a size-5 bid stands, and the bid goes at the next requote 4 s later: every per-cycle test
    passes (5x its executed size, nothing left on the ask side, pulled after the fill), but its quotes stood on
    both sides nearly all the time."""
    book = background(Book())
    for k in range(60):
        t = 10.0 * k
        big = k in (10, 40)
        book.place(t, f"b{k}", "m", "buy", 99.9, 5.0 if big else 1.0)
        book.place(t, f"a{k}", "m", "sell", 100.1, 1.0)
        if big or k % 7 == 0:
            book.fill(t + 6.0, f"a{k}", "x", 1.0)
            book.cancel(t + 9.99, f"b{k}")
        else:
            book.cancel(t + 9.99, f"b{k}")
            book.cancel(t + 9.99, f"a{k}")
    assert detect_spoofing(book.inputs(), SpoofingSettings()).is_empty()
    one = detect_spoofing(book.inputs(), SpoofingSettings(max_two_sided_share=1.0, min_share_of_executions=0.0))
    assert one.height == 1 and json.loads(one["metrics"][0])["two_sided_share"] > 0.9


def test_an_active_trader_with_a_few_coincidences_is_not_spoofing():
    """The spoofer's pattern twice, but the account also trades size 1 every few seconds in between: the two
    cycles are a small share of what it executes there."""
    book = spoofed_book(2)
    for k in range(40):
        book.place(1.5 * k + 3.0, f"n{k}", "s", "sell" if k % 2 else "buy", 100.3 if k % 2 else 99.7, 1.0)
        book.fill(1.5 * k + 3.5, f"n{k}", "x", 1.0)
    assert detect_spoofing(book.inputs(), SpoofingSettings()).is_empty()
    assert detect_spoofing(book.inputs(), SpoofingSettings(min_share_of_executions=0.0)).height == 1


def test_a_stack_of_levels_is_left_to_the_layering_detector():
    book = background(Book())
    for k in range(3):
        for level in range(3):
            book.place(60.0 * k, f"S{k}{level}", "s", "buy", 99.5 - level * 0.1, 10.0)
        book.place(60.0 * k + 0.5, f"G{k}", "s", "sell", 100.1, 1.0)
        book.fill(60.0 * k + 2.0, f"G{k}", "x", 1.0)
        for level in range(3):
            book.cancel(60.0 * k + 2.3, f"S{k}{level}")
    assert detect_spoofing(book.inputs(), SpoofingSettings()).is_empty()
    assert detect_spoofing(book.inputs(), SpoofingSettings(max_price_levels=3)).height == 1
    assert detect_layering(book.inputs(), LayeringSettings()).height == 1


@pytest.mark.parametrize("cancel_before_fill", [0.05, 0.4])
def test_three_level_spoof_pulled_just_before_the_fill_fires_once_in_the_family(cancel_before_fill):
    """Three large orders at successive levels, pulled 50-400 ms before the genuine order fills: the spoofing
    detector leaves the stack to layering, and layering ties the cancels to the fill that follows them; exactly
    one finding of the family, not none and not two."""
    book = background(Book())
    for k in range(3):
        t = 60.0 * k
        for level in range(3):
            book.place(t, f"S{k}{level}", "s", "buy", 99.5 - level * 0.1, 10.0)
        book.place(t + 0.5, f"G{k}", "s", "sell", 100.1, 1.0)
        for level in range(3):
            book.cancel(t + 2.0 - cancel_before_fill, f"S{k}{level}")
        book.fill(t + 2.0, f"G{k}", "x", 1.0)
    inputs = book.inputs()
    spoofing, layering = detect_spoofing(inputs, SpoofingSettings()), detect_layering(inputs, LayeringSettings())
    assert spoofing.is_empty() and layering.height == 1
    metrics = json.loads(layering["metrics"][0])
    assert metrics["cycles"] == 3 and metrics["median_levels"] == 3
    assert metrics["median_cancel_after_fill_ms"] == pytest.approx(-cancel_before_fill * 1_000)
    assert "before that fill" in layering["explanation"][0]


def test_without_order_events_or_when_disabled_it_stands_aside():
    book = spoofed_book()
    inputs = book.inputs()
    assert detect_spoofing(DetectionInputs(trades=inputs.trades), SpoofingSettings()).is_empty()
    assert detect_spoofing(inputs, SpoofingSettings(enabled=False)).is_empty()
    assert detect_spoofing(DetectionInputs(trades=pl.DataFrame(schema=TRADE_SCHEMA)),
                           SpoofingSettings()).schema == FINDING_SCHEMA


# --- a generated day ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [3, 7])
def test_generated_day_spoofing_episodes_are_found(seed):
    findings, labels = detect_generated(detect_spoofing, SpoofingSettings(), order_book_day(seed))
    assert_episodes_found(findings, labels, Pattern.SPOOFING)


def test_clean_generated_day_gives_no_spoofing():
    assert_no_findings(*detect_generated(detect_spoofing, SpoofingSettings(), order_book_day(4, clean=True)))


# --- the family's shared measures (detectors.orderbook) -------------------------------------------------------
def test_two_sided_share_and_executed_orders_over_windows():
    book = Book()
    book.place(0.0, "b1", "m", "buy", 99.0, 1.0)
    book.place(10.0, "s1", "m", "sell", 101.0, 1.0)
    book.cancel(30.0, "b1")
    book.cancel(40.0, "s1")
    book.place(50.0, "b2", "m", "buy", 99.0, 1.0)
    book.place(60.0, "s2", "m", "sell", 101.0, 2.0)
    book.fill(70.0, "s2", "x", 1.0)
    book.fill(75.0, "s2", "x", 1.0)  # fully executed at 75 s: one order, two fills
    book.fill(80.0, "b2", "y", 0.5)
    inputs = book.inputs()
    tables = book_tables(inputs)
    windows = pl.DataFrame({"symbol": [BTC] * 3, "user_id": ["m"] * 3,
                            "a": [at(0.0), at(0.0), at(55.0)], "b": [at(100.0), at(20.0), at(80.0)]})
    shares = two_sided_share(tables.lifecycles, windows, "a", "b", "share")["share"].to_list()
    assert shares == pytest.approx([(20.0 + 15.0) / 100.0, 0.5, 15.0 / 25.0])  # both sides: 10-30 s, 60-75 s
    executed = executed_orders_between(tables.fills, windows, "a", "b", "n")["n"].to_list()
    assert executed == [2, 0, 2]


def test_resting_quantity_leaves_no_rounding_residue():
    """Sizes that do not add up exactly in binary (0.1 + 0.2 - 0.2 - 0.1 is not 0): once all are gone, nothing
    rests (a residue would read as an 'imbalance' of 10^16 against an empty side)."""
    book = Book()
    book.place(1.0, "o0", "m", "buy", 99.0, 0.1)
    book.place(2.0, "o1", "m", "buy", 99.0, 0.2)
    book.cancel(10.0, "o1")
    book.cancel(11.0, "o0")
    inputs = book.inputs()
    tables = book_tables(inputs)
    probes = pl.DataFrame({"book": tables.lifecycles["book_key"].head(1).extend_constant(
        tables.lifecycles["book_key"][0], 2), "t": [at(5.0), at(10.5), at(20.0)]})
    resting = resting_quantity_before(tables.lifecycles, probes, ("book", "t", "resting"))["resting"].to_list()
    assert resting[:2] == pytest.approx([0.3, 0.1]) and resting[2] == 0.0
