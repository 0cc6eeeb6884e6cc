"""Layering: a stack of orders at successive price levels on one side, an execution on the other, the stack pulled.

The definition (ESMA MAR Annex II, 1(c) and its indicators; CFTC spoofing cases with layered algorithms):
"entering multiple orders ... on one side of the order book at successive price levels, with the intention
of executing a trade on the other side of the order book; once that trade has taken place, the manipulative
orders are removed". In order events: one account places several orders on one side at distinct prices, an
order of its own on the other side executes while they rest, and the layers are removed together once that
trade has taken place (or as it is being taken), barely executed themselves.

Layering is spoofing at several levels (the two are one family): a cycle here is tied exactly as in
detectors.spoofing - one fill of an account in a symbol with the account's orders on the other side that the
fill ties to (orderbook.opposite_fill_near_cancel): the last fill while the order rested, at most
`max_cancel_after_fill_ms` before its cancel, or failing that the first one at most `max_cancel_before_fill_ms`
after it. The layering detector takes the cycles at >= `min_layers` prices, the spoofing detector those at fewer
(its `max_price_levels`): one alert per episode, whether the stack was pulled after or just before the fill.
A cycle counts when its orders
- stand at >= `min_layers` distinct prices (on one side: the side is part of the cycle),
- were placed within `max_placement_span_ms` of each other, each rested at most `max_order_life_ms`, and the
  whole stack stood together (from its last placement to the fill, or to its first cancel if earlier) at least
  `min_rest_before_fill_ms`,
- were cancelled within `max_cancel_span_ms` of each other, having executed at most `max_filled_share` of their
  total size,
- add up to >= `min_stack_vs_book_median` x the symbol's typical resting order (orderbook.median_resting_size),
- and leaned on one side: the layered side's resting quantity just before the fill (or the first cancel, if
  earlier) >= `min_side_imbalance` x what the account still had resting on the filled side just after the fill
  (its genuine order, once executed, is not counted against the layers).
Cycles of one account in one symbol less than `episode_gap_s` apart form an episode (either side); an episode is a
finding when it has at least `min_cycles` cycles and it is the account's practice rather than market making,
judged from `execution_context_s` before the episode to as long after it (orderbook.account_practice): the
genuine orders of its cycles are at least `min_share_of_executions` of the account's orders executed in the
symbol then (layers, when partly hit, left out), and it had orders resting on both sides at most
`max_two_sided_share` of that time. A market maker or high-frequency quoter with quotes at several prices on
each side, on their own clocks, has one side momentarily empty while the other holds a little stack just after a
fill now and then - one instant passes every per-cycle test - but over the episode its quotes stand on both
sides and it trades with hundreds of ordinary fills; a layerer's other side is empty between its genuine orders
and its trades come with its stacks. Known limit: an account that also quotes both sides continuously in the
same symbol is not reported by this rule.

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
    Finding,
    empty_findings,
    findings_frame,
)
from surveillance_pipeline.detectors.orderbook import (
    BookPracticeSettings,
    BOOK_MEDIAN_SIZE,
    FILL_AT,
    FILL_ORDER,
    FILL_QUANTITY,
    FILL_TRADE,
    SHARE_OF_EXECUTIONS,
    TWO_SIDED_SHARE,
    BookTables,
    Life,
    account_practice,
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
PROBE_AT, AFTER_FILL = "probe_at", "after_fill"
EPISODE = [SYMBOL, ACCOUNT, "episode"]


class LayeringSettings(BookPracticeSettings):
    min_layers: int = Field(
        3, ge=2, le=100,
        description="distinct price levels the pulled orders stand at: 'multiple orders at successive price "
                    "levels'; one or two levels are the spoofing detector's (its max_price_levels is one less)")
    max_placement_span_ms: int = Field(
        60_000, ge=1, le=3_600_000,
        description="the layers were placed within this many ms of each other: a stack built in one go (an "
                    "algorithm at once, a hand level by level within seconds to a minute), not orders "
                    "accumulated over many minutes")
    max_order_life_ms: int = Field(
        120_000, ge=1, le=3_600_000,
        description="each layer rested at most this many ms: layers stand only until the execution they are to "
                    "induce arrives - seconds, in a slow market a few minutes - not as standing orders for hours")
    min_rest_before_fill_ms: int = Field(
        100, ge=0, le=60_000,
        description="the whole stack stood together at least this many ms before the opposite execution (or "
                    "before its first cancel, when it was pulled just before): layers act by being seen together "
                    "(market data, then someone's reaction); orders that appear a few ms before a coincident fill, "
                    "or fleeting orders that never stood at the same time, as a quote stuffer's, cannot have "
                    "induced it")
    max_cancel_after_fill_ms: int = Field(
        60_000, ge=1, le=3_600_000,
        description="a layer is cancelled at most this many ms after the account's last opposite fill while it "
                    "rested: 'once that trade has taken place, the orders are removed' - at once by an algorithm, "
                    "within seconds by hand, or when the planned rest runs out; beyond a minute the cancel is a "
                    "new decision (the same bound as spoofing's, so that the two detectors share their cycles)")
    max_cancel_before_fill_ms: int = Field(
        1_000, ge=0, le=60_000,
        description="failing a fill while it rested, a layer is cancelled at most this many ms before the "
                    "account's opposite fill: pulled as the genuine order is being taken (spoofing's bound too)")
    max_cancel_span_ms: int = Field(
        5_000, ge=0, le=60_000,
        description="all layers are cancelled within this many ms of each other: removed together (one "
                    "cancel-all, a burst of cancels, or a hand clicking through the levels within seconds), not "
                    "one by one as the market moves over minutes")
    max_filled_share: float = Field(
        0.5, ge=0.0, le=1.0,
        description="the layers executed at most this share of their total size: most of the stack was withdrawn "
                    "unexecuted (layers near the touch are sometimes partly hit, a risk the layerer accepts)")
    min_stack_vs_book_median: float = Field(
        1.0, ge=0.0, le=1_000.0,
        description="the stack's total size is at least this many times the symbol's typical resting order (the "
                    "median over accounts of each account's median resting order): layering fakes depth, and a "
                    "stack smaller than one ordinary order does not change what the book shows")
    min_side_imbalance: float = Field(
        3.0, ge=0.0, le=1_000.0,
        description="the account's resting quantity on the layered side (just before the fill, or the first "
                    "cancel if earlier) is at least this many times what it still had resting on the filled side "
                    "just after the fill: the stack leans on one side; a ladder quoted on both sides is near 1")
    min_share_of_executions: float = Field(
        0.5, ge=0.0, le=1.0,
        description="the genuine orders of the episode's cycles are at least this share of the account's orders "
                    "executed in the symbol around the episode: the account's trades there come with the stacks; "
                    "for a market maker or a high-frequency quoter, stack-like coincidences are a few among "
                    "hundreds of two-sided fills")
    execution_context_s: float = Field(
        60.0, ge=0.0, le=86_400.0,
        description="the account's executions are counted from this many seconds before the episode's first "
                    "layer to as long after its end: enough for a quoter's ordinary fills to show around even a "
                    "single cycle, short enough that an occasional trader's unrelated trades hardly count")
    min_cycles: int = Field(
        1, ge=1, le=1_000,
        description="layer-fill-cancel cycles an episode needs: one full sequence already is the practice MAR "
                    "Annex II describes (the stack, the execution, the removal all have to be there)")
    episode_gap_s: float = Field(
        1_800.0, gt=0.0, le=86_400.0,
        description="cycles of one account in one symbol less than this many seconds apart are one episode "
                    "(one alert per campaign, not per cycle; spoofing's gap too)")


def detect_layering(inputs: DetectionInputs, settings: LayeringSettings) -> pl.DataFrame:
    if not settings.enabled or not inputs.has_orders:
        return empty_findings()
    tables = book_tables(inputs)
    cycles = _layer_cycles(tables, settings)
    if cycles.is_empty():
        return empty_findings()
    episodes = chain_ids(cycles, [SYMBOL, ACCOUNT], FILL_AT, timedelta(seconds=settings.episode_gap_s), "episode")
    return _findings(episodes, tables, settings)


def _layer_cycles(tables: BookTables, settings: LayeringSettings) -> pl.DataFrame:
    """One row per qualifying cycle (account x symbol x side x fill) with its layers' measures."""
    lifecycles, fills = tables.lifecycles, tables.fills
    life_us = (pl.col(Life.CANCELLED) - pl.col(Life.PLACED)).dt.total_microseconds()
    candidates = lifecycles.filter(
        pl.col(Life.RESTING) & pl.col(Life.CANCELLED).is_not_null() & (pl.col(Order.QUANTITY) > 0)
        & (life_us <= settings.max_order_life_ms * 1_000))
    tied = opposite_fill_near_cancel(candidates, fills, settings.max_cancel_after_fill_ms,
                                     settings.max_cancel_before_fill_ms)
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
        (pl.col(Life.FILLED) > 0).sum().alias("layers_hit"),
        _span_ms(Life.PLACED).alias("placement_span_ms"),
        _span_ms(Life.CANCELLED).alias("cancel_span_ms"),
        ((pl.col(Life.CANCELLED).min() - pl.col(FILL_AT).first()).dt.total_microseconds() / 1_000)
        .alias("cancel_after_fill_ms"),
        ((pl.min_horizontal(pl.col(FILL_AT).first(), pl.col(Life.CANCELLED).min()) - pl.col(Life.PLACED).max())
         .dt.total_microseconds() / 1_000).alias("rest_before_fill_ms"),
        pl.col(Life.PLACED).min().alias("placed_first"),
        pl.col(Life.CANCELLED).min().alias("cancelled_first"),
        pl.col(Life.CANCELLED).max().alias("cancelled_last"),
        pl.col(FILL_QUANTITY).first(), pl.col(FILL_TRADE).first(), pl.col(FILL_ORDER).first(),
        pl.col(Order.ORDER_ID).sort_by(Order.PRICE),
    ).filter(
        (pl.col("levels") >= settings.min_layers)
        & (pl.col("placement_span_ms") <= settings.max_placement_span_ms)
        & (pl.col("cancel_span_ms") <= settings.max_cancel_span_ms)
        & (pl.col("rest_before_fill_ms") >= settings.min_rest_before_fill_ms)
        & (pl.col("filled_share") <= settings.max_filled_share)
    )
    cycles = cycles.join(tables.book_medians, on=SYMBOL, how="left").with_columns(
        (pl.col("layered_quantity") / pl.col(BOOK_MEDIAN_SIZE)).alias("stack_vs_book_median")).filter(
        pl.col("stack_vs_book_median") >= settings.min_stack_vs_book_median)
    if cycles.is_empty():
        return cycles
    cycles = cycles.with_columns(
        book_key(pl.col(SYMBOL), pl.col(ACCOUNT), opposite(pl.col(SIDE))).alias("fill_book"),
        # the layers are read just before the fill (or before the first cancel, when they went just before it);
        # the filled side just after the fill: what the account still offered there once its genuine order traded
        pl.min_horizontal(FILL_AT, "cancelled_first").alias(PROBE_AT),
        (pl.col(FILL_AT) + timedelta(microseconds=1)).alias(AFTER_FILL))
    cycles = resting_quantity_before(lifecycles, cycles, (Life.BOOK, PROBE_AT, LAYER_SIDE_QTY),
                                     ("fill_book", AFTER_FILL, FILL_SIDE_QTY))
    return cycles.filter(pl.col(LAYER_SIDE_QTY) >= settings.min_side_imbalance * pl.col(FILL_SIDE_QTY)).drop(
        "fill_book", PROBE_AT, AFTER_FILL)


def _span_ms(column: str) -> pl.Expr:
    return (pl.col(column).max() - pl.col(column).min()).dt.total_microseconds() / 1_000


def _findings(cycles: pl.DataFrame, tables: BookTables, settings: LayeringSettings) -> pl.DataFrame:
    genuine = pl.coalesce(pl.format("o:{}", FILL_ORDER), pl.format("t:{}", FILL_TRADE))
    episodes = cycles.group_by(EPISODE).agg(
        pl.len().alias("cycles"),
        pl.col(SIDE).unique().sort().alias("sides"),
        pl.col("levels").median().alias("median_levels"),
        pl.col("levels").max().alias("max_levels"),
        pl.col("layered_quantity").median().alias("median_layered_quantity"),
        (pl.col("layered_quantity") / pl.col(FILL_QUANTITY)).median().alias("layered_vs_fill"),
        pl.col("stack_vs_book_median").median(),
        pl.col(FILL_QUANTITY).sum().alias("opposite_fill_quantity"),
        pl.col("filled_share").max().alias("max_filled_share"),
        pl.col("layers_hit").sum(),
        pl.col("placement_span_ms").median().alias("median_placement_span_ms"),
        pl.col("cancel_span_ms").median().alias("median_cancel_span_ms"),
        pl.col("cancel_after_fill_ms").median().alias("median_cancel_after_fill_ms"),
        pl.col("rest_before_fill_ms").median().alias("median_rest_before_fill_ms"),
        side_ratio(LAYER_SIDE_QTY, FILL_SIDE_QTY).min().alias("min_side_imbalance"),
        pl.col("placed_first").min(), pl.col("cancelled_last").max(),
        pl.col(FILL_AT).min().alias("first_fill"), pl.col(FILL_AT).max().alias("last_fill"),
        genuine.n_unique().alias("genuine_orders"),
        pl.col(Order.ORDER_ID).sort_by("placed_first").list.explode(keep_nulls=False, empty_as_null=False)
        .alias("order_ids"),
        pl.col(FILL_TRADE).sort_by(FILL_AT).drop_nulls().alias("fill_trades"),
    ).filter(pl.col("cycles") >= settings.min_cycles)
    if episodes.is_empty():
        return empty_findings()
    episodes = account_practice(
        tables, episodes.with_columns(pl.min_horizontal("placed_first", "first_fill").alias(Finding.WINDOW_START),
                                      pl.max_horizontal("cancelled_last", "last_fill").alias(Finding.WINDOW_END)),
        settings.execution_context_s, "genuine_orders", "layers_hit", settings.min_share_of_executions,
        settings.max_two_sided_share)
    rows = []
    for e in episodes.sort(Finding.WINDOW_END).iter_rows(named=True):  # one row per episode: few
        start, end = e[Finding.WINDOW_START], e[Finding.WINDOW_END]
        sides = " and ".join(e["sides"])
        lag = e["median_cancel_after_fill_ms"]
        repetition = 1.0 - 0.5 ** (e["cycles"] - settings.min_cycles + 1)
        metrics = {k: e[k] for k in (
            "cycles", "median_levels", "max_levels", "median_layered_quantity", "layered_vs_fill",
            "stack_vs_book_median",
            "opposite_fill_quantity", "max_filled_share", "median_placement_span_ms", "median_cancel_span_ms",
            "median_cancel_after_fill_ms", "median_rest_before_fill_ms", "min_side_imbalance", "genuine_orders",
            "executed_orders", SHARE_OF_EXECUTIONS, TWO_SIDED_SHARE)}
        rows.append({
            Finding.PATTERN: Pattern.LAYERING.value, Finding.SYMBOL: e[SYMBOL], Finding.USER_IDS: [e[ACCOUNT]],
            Finding.WINDOW_START: start, Finding.WINDOW_END: end,
            Finding.SCORE: 1.0 - (1.0 - repetition) * settings.min_layers / max(e["median_levels"], settings.min_layers),
            Finding.EXPLANATION: (
                f"In {e[SYMBOL]} between {clock(start)} and {clock(end)} UTC, {e[ACCOUNT]} stacked {sides} orders "
                f"in {e['cycles']} cycle(s) at a median {number(e['median_levels'])} successive prices (a median "
                f"{number(e['median_layered_quantity'])} in all: {number(e['stack_vs_book_median'])}x the symbol's "
                f"typical resting order, {number(e['layered_vs_fill'])}x its own fill on the other side, "
                f"{imbalance_words(e['min_side_imbalance'])}), placed within {ms(e['median_placement_span_ms'])}; "
                f"each time a fill of its own on the other side came while they rested (or as they were pulled), "
                f"and it cancelled all within {ms(e['median_cancel_span_ms'])}, {ms(abs(lag))} "
                f"{'after' if lag >= 0 else 'before'} that fill ({e['max_filled_share']:.0%} of the layers "
                f"executed); {e['genuine_orders']} of the {e['executed_orders']} orders it had executed in the "
                f"symbol around the episode came with the stacks, and it had orders on both sides "
                f"{e[TWO_SIDED_SHARE]:.0%} of that time."),
            Finding.EVIDENCE: evidence_list(e["order_ids"], e["fill_trades"]),
            Finding.METRICS: metrics,
        })
    return findings_frame(rows) if rows else empty_findings()
