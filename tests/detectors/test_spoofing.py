"""Spoofing on hand-made order books, its legitimate look-alikes, and a generated day.

The book: background accounts rest orders of size 1 (the symbol's median resting order is 1). The spoofer `s`
trades size 1 for real (its normal size) and rests size-10 orders it cancels right after its own fill on the
other side.
"""
import json

import polars as pl
import pytest

from surveillance_pipeline.contract import TRADE_SCHEMA, Pattern
from surveillance_pipeline.detectors.base import FINDING_SCHEMA, DetectionInputs
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
    assert metrics["min_side_imbalance"] == pytest.approx(10.0)  # 10 resting against the genuine 1
    assert {"order:Ls0", "order:Ls1", "order:Ls2", "trade:t0", "trade:t2"} <= set(row["evidence"])
    assert "10x its normal order size" in row["explanation"] and "300 ms after" in row["explanation"]
    assert 0.5 < row["score"] <= 1.0


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
    ({"cancel_after_fill": 10.0}, "cancelled long after the fill"),
])
def test_orders_that_are_not_large_or_not_pulled_quickly_do_not_fire(change, reason):
    book = spoofed_book(**change)
    assert detect_spoofing(book.inputs(), SpoofingSettings()).is_empty(), reason


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
