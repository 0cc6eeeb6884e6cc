"""Layering: a stack of orders at successive price levels on one side, an execution on the other, the stack pulled.

The definition (ESMA MAR Annex II, 1(c) and its indicators; CFTC spoofing cases with layered algorithms):
"entering multiple orders ... on one side of the order book at successive price levels, with the intention
of executing a trade on the other side of the order book; once that trade has taken place, the manipulative
orders are removed". In order events: one account places several orders on one side at distinct prices in a
short time, an order of its own on the other side executes while they rest, and the layers are cancelled
together (within a short span), right after that execution and barely executed themselves.

A layering cycle here is one fill of an account in a symbol with the account's orders on the other side that
were resting when it happened and were cancelled soon after it, before any later such fill
(orderbook.opposite_fill_near_cancel: a join_asof per cancelled order). It counts when those orders
- stand at >= `min_layers` distinct prices (on one side: the side is part of the cycle),
- were placed within `max_placement_span_ms` of each other, the first at least `min_rest_before_fill_ms`
  before the fill, and each rested at most `max_order_life_ms`,
- were cancelled within `max_cancel_span_ms` of each other, the first within `cancel_within_ms_after_fill`
  of the fill, having executed at most `max_filled_share` of their total size,
- add up to >= `min_stack_vs_book_median` x the symbol's median resting order,
- and left the account's book one-sided just before the fill: the layered side's resting quantity >=
  `min_side_imbalance` x its resting quantity on the filled side (a market maker's ladders stand on both sides).
Cycles of one account in one symbol less than `episode_gap_s` apart form an episode (either side); an episode of
at least `min_cycles` cycles is a finding.

Score: 1 - (1 - r) x min_layers / levels, with r = 1 - 2^-(cycles - min_cycles + 1) the repetition term and
levels the episode's median number of levels: one half for a single minimal stack, each further cycle halving
the doubt and deeper stacks shrinking it in proportion.
"""
from __future__ import annotations

from datetime import timedelta

import polars as pl
from pydantic import Field

from surveillance_pipeline.contract import Order, Pattern
from surveillance_pipeline.detectors.base import (
    DetectionInputs,
    DetectorSettings,
    Finding,
    empty_findings,
    findings_frame,
)
from surveillance_pipeline.detectors.orderbook import (
    BOOK_MEDIAN_SIZE,
    FILL_AT,
    FILL_QUANTITY,
    FILL_TRADE,
    BookTables,
    Life,
    book_key,
    book_tables,
    chain_ids,
    clock,
    evidence_list,
    imbalance_words,
    ms,
    number,
    opposite,
    opposite_fill_near_cancel,
    resting_quantity_before,
    side_ratio,
)

ACCOUNT, SYMBOL, SIDE = Order.USER_ID, Order.SYMBOL, Order.SIDE
CYCLE = [Life.BOOK, FILL_AT]  # one side of one account's book in one symbol, and the fill
LAYER_SIDE_QTY, FILL_SIDE_QTY = "layered_side_resting", "filled_side_resting"


class LayeringSettings(DetectorSettings):
    min_layers: int = Field(
        3, ge=2, le=100,
        description="distinct price levels the pulled orders stand at: 'multiple orders at successive price "
                    "levels'; two orders are an ordinary pair (and one or two large ones are the spoofing "
                    "detector's)")
    max_placement_span_ms: int = Field(
        10_000, ge=1, le=3_600_000,
        description="the layers were placed within this many ms of each other: a stack built in one go (an "
                    "algorithm or quick clicks), not orders accumulated over minutes")
    max_order_life_ms: int = Field(
        60_000, ge=1, le=3_600_000,
        description="each layer rested at most this many ms: layers are there only until the other side "
                    "executes (seconds), not standing orders")
    min_rest_before_fill_ms: int = Field(
        100, ge=0, le=60_000,
        description="the first layer stood at least this many ms before the opposite execution: layers act by "
                    "being seen (market data, then someone's reaction); orders that appear a few ms before a "
                    "coincident fill, as a quote stuffer's do, cannot have induced it")
    cancel_within_ms_after_fill: int = Field(
        3_000, ge=1, le=60_000,
        description="the first layer is cancelled at most this many ms after the account's opposite fill: "
                    "'once that trade has taken place, the orders are removed' (within milliseconds to a second "
                    "or two in the cases)")
    max_cancel_span_ms: int = Field(
        1_000, ge=0, le=60_000,
        description="all layers are cancelled within this many ms of each other: removed together (one "
                    "cancel-all or a burst of cancels), not one by one as the market moves")
    max_filled_share: float = Field(
        0.1, ge=0.0, le=1.0,
        description="the layers executed at most this share of their total size: they were not meant to trade")
    min_stack_vs_book_median: float = Field(
        1.0, ge=0.0, le=1_000.0,
        description="the stack's total size is at least this many times the symbol's median resting order: "
                    "layering fakes depth, and a stack smaller than one ordinary order does not change what the "
                    "book shows")
    min_side_imbalance: float = Field(
        3.0, ge=0.0, le=1_000.0,
        description="just before the fill, the account's resting quantity on the layered side is at least this "
                    "many times its resting quantity on the filled side: a market maker quoting ladders on both "
                    "sides is near 1")
    min_cycles: int = Field(
        1, ge=1, le=1_000,
        description="layer-fill-cancel cycles an episode needs: one full sequence already is the practice MAR "
                    "Annex II describes (the stack, the execution, the removal all have to be there)")
    episode_gap_s: float = Field(
        600.0, gt=0.0, le=86_400.0,
        description="cycles of one account in one symbol less than this many seconds apart are one episode "
                    "(one alert per campaign, not per cycle)")


def detect_layering(inputs: DetectionInputs, settings: LayeringSettings) -> pl.DataFrame:
    if not settings.enabled or not inputs.has_orders:
        return empty_findings()
    cycles = _layer_cycles(book_tables(inputs), settings)
    if cycles.is_empty():
        return empty_findings()
    episodes = chain_ids(cycles, [SYMBOL, ACCOUNT], FILL_AT, timedelta(seconds=settings.episode_gap_s), "episode")
    return _findings(episodes, settings)


def _layer_cycles(tables: BookTables, settings: LayeringSettings) -> pl.DataFrame:
    """One row per qualifying cycle (account x symbol x side x fill) with its layers' measures."""
    lifecycles, fills = tables.lifecycles, tables.fills
    life_us = (pl.col(Life.CANCELLED) - pl.col(Life.PLACED)).dt.total_microseconds()
    candidates = lifecycles.filter(
        pl.col(Life.RESTING) & pl.col(Life.CANCELLED).is_not_null() & (pl.col(Order.QUANTITY) > 0)
        & (life_us <= settings.max_order_life_ms * 1_000))
    # each cancel tied to the account's last opposite fill while the order rested, if it came soon enough for
    # the order to be among the layers pulled after that fill (the first layer's delay is checked per cycle)
    tied = opposite_fill_near_cancel(
        candidates, fills, settings.cancel_within_ms_after_fill + settings.max_cancel_span_ms)
    if tied.is_empty():
        return tied.select(*CYCLE)
    cycles = tied.group_by(CYCLE).agg(
        pl.col(SYMBOL, ACCOUNT, SIDE).first(),
        pl.col(Order.PRICE).n_unique().alias("levels"),
        pl.len().alias("layers"),
        pl.col(Order.PRICE).min().alias("price_low"),
        pl.col(Order.PRICE).max().alias("price_high"),
        pl.col(Order.QUANTITY).sum().alias("layered_quantity"),
        (pl.col(Life.FILLED).sum() / pl.col(Order.QUANTITY).sum()).alias("filled_share"),
        _span_ms(Life.PLACED).alias("placement_span_ms"),
        _span_ms(Life.CANCELLED).alias("cancel_span_ms"),
        ((pl.col(Life.CANCELLED).min() - pl.col(FILL_AT).first()).dt.total_microseconds() / 1_000)
        .alias("cancel_after_fill_ms"),
        ((pl.col(FILL_AT).first() - pl.col(Life.PLACED).min()).dt.total_microseconds() / 1_000)
        .alias("rest_before_fill_ms"),
        pl.col(Life.PLACED).min().alias("placed_first"),
        pl.col(Life.CANCELLED).max().alias("cancelled_last"),
        pl.col(FILL_QUANTITY).first(), pl.col(FILL_TRADE).first(),
        pl.col(Order.ORDER_ID).sort_by(Order.PRICE),
    ).filter(
        (pl.col("levels") >= settings.min_layers)
        & (pl.col("placement_span_ms") <= settings.max_placement_span_ms)
        & (pl.col("cancel_span_ms") <= settings.max_cancel_span_ms)
        & (pl.col("cancel_after_fill_ms") <= settings.cancel_within_ms_after_fill)
        & (pl.col("rest_before_fill_ms") >= settings.min_rest_before_fill_ms)
        & (pl.col("filled_share") <= settings.max_filled_share)
    )
    cycles = cycles.join(tables.book_medians, on=SYMBOL, how="left").with_columns(
        (pl.col("layered_quantity") / pl.col(BOOK_MEDIAN_SIZE)).alias("stack_vs_book_median")).filter(
        pl.col("stack_vs_book_median") >= settings.min_stack_vs_book_median)
    if cycles.is_empty():
        return cycles
    cycles = cycles.with_columns(
        book_key(pl.col(SYMBOL), pl.col(ACCOUNT), opposite(pl.col(SIDE))).alias("fill_book"))
    cycles = resting_quantity_before(lifecycles, cycles, Life.BOOK, FILL_AT, LAYER_SIDE_QTY)
    cycles = resting_quantity_before(lifecycles, cycles, "fill_book", FILL_AT, FILL_SIDE_QTY)
    return cycles.filter(pl.col(LAYER_SIDE_QTY) >= settings.min_side_imbalance * pl.col(FILL_SIDE_QTY)).drop(
        "fill_book")


def _span_ms(column: str) -> pl.Expr:
    return (pl.col(column).max() - pl.col(column).min()).dt.total_microseconds() / 1_000


def _findings(cycles: pl.DataFrame, settings: LayeringSettings) -> pl.DataFrame:
    episodes = cycles.group_by(SYMBOL, ACCOUNT, "episode").agg(
        pl.len().alias("cycles"),
        pl.col(SIDE).unique().sort().alias("sides"),
        pl.col("levels").median().alias("median_levels"),
        pl.col("levels").max().alias("max_levels"),
        pl.col("layered_quantity").median().alias("median_layered_quantity"),
        (pl.col("layered_quantity") / pl.col(FILL_QUANTITY)).median().alias("layered_vs_fill"),
        pl.col("stack_vs_book_median").median(),
        pl.col(FILL_QUANTITY).sum().alias("opposite_fill_quantity"),
        pl.col("filled_share").max().alias("max_filled_share"),
        pl.col("placement_span_ms").median().alias("median_placement_span_ms"),
        pl.col("cancel_span_ms").median().alias("median_cancel_span_ms"),
        pl.col("cancel_after_fill_ms").median().alias("median_cancel_after_fill_ms"),
        pl.col("rest_before_fill_ms").median().alias("median_rest_before_fill_ms"),
        side_ratio(LAYER_SIDE_QTY, FILL_SIDE_QTY).min().alias("min_side_imbalance"),
        pl.col("placed_first").min(), pl.col("cancelled_last").max(),
        pl.col(FILL_AT).min().alias("first_fill"),
        pl.col(Order.ORDER_ID).sort_by("placed_first").list.explode(keep_nulls=False, empty_as_null=False)
        .alias("order_ids"),
        pl.col(FILL_TRADE).sort_by(FILL_AT).drop_nulls().alias("fill_trades"),
    ).filter(pl.col("cycles") >= settings.min_cycles)
    rows = []
    for e in episodes.sort("cancelled_last").iter_rows(named=True):  # one row per episode: few
        start, end = e["placed_first"], e["cancelled_last"]
        sides = " and ".join(e["sides"])
        repetition = 1.0 - 0.5 ** (e["cycles"] - settings.min_cycles + 1)
        metrics = {k: e[k] for k in (
            "cycles", "median_levels", "max_levels", "median_layered_quantity", "layered_vs_fill",
            "stack_vs_book_median",
            "opposite_fill_quantity", "max_filled_share", "median_placement_span_ms", "median_cancel_span_ms",
            "median_cancel_after_fill_ms", "median_rest_before_fill_ms", "min_side_imbalance")}
        rows.append({
            Finding.PATTERN: Pattern.LAYERING.value, Finding.SYMBOL: e[SYMBOL], Finding.USER_IDS: [e[ACCOUNT]],
            Finding.WINDOW_START: start, Finding.WINDOW_END: end,
            Finding.SCORE: 1.0 - (1.0 - repetition) * settings.min_layers / max(e["median_levels"], settings.min_layers),
            Finding.EXPLANATION: (
                f"In {e[SYMBOL]} between {clock(start)} and {clock(end)} UTC, {e[ACCOUNT]} stacked {sides} orders "
                f"in {e['cycles']} cycle(s) at a median {number(e['median_levels'])} successive prices (a median "
                f"{number(e['median_layered_quantity'])} in all: {number(e['stack_vs_book_median'])}x the book's "
                f"median resting order, {number(e['layered_vs_fill'])}x its own fill on the other side, "
                f"{imbalance_words(e['min_side_imbalance'])}), placed within {ms(e['median_placement_span_ms'])}; "
                f"each time a fill of its own on the other side came while they rested, and it cancelled all within "
                f"{ms(e['median_cancel_span_ms'])}, {ms(e['median_cancel_after_fill_ms'])} after that fill "
                f"({e['max_filled_share']:.0%} of the layers executed)."),
            Finding.EVIDENCE: evidence_list(e["order_ids"], e["fill_trades"]),
            Finding.METRICS: metrics,
        })
    return findings_frame(rows) if rows else empty_findings()
