"""Spoofing: large orders on one side, pulled right around a fill of the same account on the other side.

The definition (CEA §4c(a)(5)(C), Dodd-Frank §747): "bidding or offering with the intent to cancel the bid or
offer before execution". The enforced cases (Sarao, Coscia) show its trace in order events: an account rests
an order far larger than it normally trades, and than the book normally shows, on one side; a small genuine
order of the same account executes on the other side; the large order is cancelled within milliseconds to a
second or two of that fill, itself (almost) unexecuted; and the cycle repeats.

A spoof cycle here is one fill of an account in a symbol with the account's large orders on the other side
that the fill ties to (orderbook.opposite_fill_near_cancel: two join_asofs per cancelled order): the last fill
while the order rested, at most `cancel_within_ms_of_fill` before its cancel, or failing that the first one at
most as long after it. It counts when
- each order is large: >= `account_size_multiple` x the account's normal order size (the median size of its
  executed orders in the symbol) and >= `book_size_multiple` x the symbol's median resting order size;
- it rested at most `max_order_life_ms` and executed at most `max_filled_share` of its size;
- the account's book was one-sided just before the fill (or the cancel, if that came first): the quantity
  resting on the large orders' side >= `min_side_imbalance` x what it had resting on the filled side (a
  market maker quotes both sides);
- the orders that fill ties to stand at no more than `max_price_levels` prices (more levels pulled together is
  layering: detectors.layering reports it, so that one episode is not reported twice).
Cycles of one account in one symbol less than `episode_gap_s` apart form an episode; an episode of at least
`min_cycles` cycles is a finding. A large order cancelled once after a move, with no fill on the other side,
never is.

Score: 1 - 2^-(cycles - min_cycles + 1): one half at the minimum repetition, each further cycle halves the doubt.
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
CANCEL_AFTER_FILL_MS, PROBE_AT = "cancel_after_fill_ms", "probe_at"
NORMAL, BOOK_TYPICAL = "account_normal_size", BOOK_MEDIAN_SIZE
SPOOF_SIDE_QTY, FILL_SIDE_QTY = "spoof_side_resting", "filled_side_resting"


class SpoofingSettings(DetectorSettings):
    account_size_multiple: float = Field(
        3.0, ge=1.0, le=1_000.0,
        description="a spoof order is at least this many times the account's normal order size (the median size "
                    "of its executed orders in the symbol): the cases show fakes an order of magnitude above the "
                    "genuine orders; 3x leaves room for smaller-scale spoofers, while an honest account's "
                    "occasional bigger order still has to meet every other condition, repeatedly")
    book_size_multiple: float = Field(
        1.5, ge=0.0, le=1_000.0,
        description="... and at least this many times the symbol's median resting order size (all accounts): the "
                    "order must stand out at its level to mislead about supply or demand; the book's median is "
                    "set by market makers' quotes, often several times a retail order, so half again as large is "
                    "already conspicuous (the account-relative multiple is the stricter test)")
    cancel_within_ms_of_fill: int = Field(
        3_000, ge=1, le=60_000,
        description="the large order is cancelled at most this many ms after the account's opposite fill (or, "
                    "failing that, the opposite fill follows the cancel within as many ms): the cases show "
                    "cancels within milliseconds to a second or two of the genuine execution, an algorithm's or "
                    "a quick hand's reaction to it, not a later change of view")
    max_order_life_ms: int = Field(
        60_000, ge=1, le=3_600_000,
        description="the large order rested at most this many ms (new to cancel): a fake is fleeting (seconds), "
                    "an order placed to trade waits longer")
    max_filled_share: float = Field(
        0.1, ge=0.0, le=1.0,
        description="the large order executed at most this share of its size ('intent to cancel before "
                    "execution'); also the line between an executed and an unexecuted order for the normal size")
    min_side_imbalance: float = Field(
        3.0, ge=0.0, le=1_000.0,
        description="just before the fill, the account's resting quantity on the large orders' side is at least "
                    "this many times its resting quantity on the filled side: spoofing leans on one side, a market "
                    "maker's two-sided quotes are near 1")
    max_price_levels: int = Field(
        2, ge=1, le=100,
        description="the orders pulled after one fill stand at no more than this many prices; more successive "
                    "levels pulled together are layering (reported by the layering detector, not twice)")
    min_cycles: int = Field(
        2, ge=1, le=1_000,
        description="fill-then-cancel cycles an episode needs: the definition and the cases are about a "
                    "repeated practice; one large order pulled once is not reported")
    episode_gap_s: float = Field(
        600.0, gt=0.0, le=86_400.0,
        description="cycles of one account in one symbol less than this many seconds apart are one episode "
                    "(one alert per campaign, not per cycle)")


def detect_spoofing(inputs: DetectionInputs, settings: SpoofingSettings) -> pl.DataFrame:
    if not settings.enabled or not inputs.has_orders:
        return empty_findings()
    cycles = _spoof_cycles(book_tables(inputs), settings)
    if cycles.is_empty():
        return empty_findings()
    episodes = chain_ids(cycles, [SYMBOL, ACCOUNT], FILL_AT, timedelta(seconds=settings.episode_gap_s), "episode")
    return _findings(episodes, settings)


def _account_normal_sizes(lifecycles: pl.DataFrame, pairs: pl.DataFrame, settings: SpoofingSettings) -> pl.DataFrame:
    """NORMAL for the given symbol x account pairs: the median size of the account's executed orders in the symbol
    (all its orders there when none it placed executed: fills without order links)."""
    executed = pl.col(Life.FILLED) > settings.max_filled_share * pl.col(Order.QUANTITY)
    return (lifecycles.join(pairs, on=[SYMBOL, ACCOUNT], how="semi").filter(pl.col(Order.QUANTITY) > 0)
            .group_by(SYMBOL, ACCOUNT).agg(pl.coalesce(pl.col(Order.QUANTITY).filter(executed).median(),
                                                       pl.col(Order.QUANTITY).median()).alias(NORMAL)))


def _spoof_cycles(tables: BookTables, settings: SpoofingSettings) -> pl.DataFrame:
    """One row per large order of a qualifying cycle, with its cycle's fill and measures."""
    lifecycles, fills = tables.lifecycles, tables.fills
    life_us = (pl.col(Life.CANCELLED) - pl.col(Life.PLACED)).dt.total_microseconds()
    candidates = lifecycles.filter(
        pl.col(Life.RESTING) & pl.col(Life.CANCELLED).is_not_null() & (pl.col(Order.QUANTITY) > 0)
        & (pl.col(Life.FILLED) <= settings.max_filled_share * pl.col(Order.QUANTITY))
        & (life_us <= settings.max_order_life_ms * 1_000))
    # large against the book first (a cheap join on the symbol), then against the account's own normal size
    big = candidates.join(tables.book_medians, on=SYMBOL, how="inner").filter(
        pl.col(Order.QUANTITY) >= settings.book_size_multiple * pl.col(BOOK_TYPICAL))
    normal = _account_normal_sizes(lifecycles, big.select(SYMBOL, ACCOUNT).unique(), settings)
    large = big.join(normal, on=[SYMBOL, ACCOUNT], how="inner").filter(
        pl.col(Order.QUANTITY) >= settings.account_size_multiple * pl.col(NORMAL))
    window_ms = settings.cancel_within_ms_of_fill
    tied = opposite_fill_near_cancel(large, fills, window_ms, window_ms)
    if tied.is_empty():
        return tied
    # the prices of every order (large or not) of those books that the same fills tie to
    same_books = candidates.join(tied.select(Life.BOOK).unique(), on=Life.BOOK, how="semi")
    levels = opposite_fill_near_cancel(same_books, fills, window_ms, window_ms).group_by(CYCLE).agg(
        pl.col(Order.PRICE).n_unique().alias("levels"))
    cycles = (
        tied.join(levels, on=CYCLE, how="inner").filter(pl.col("levels") <= settings.max_price_levels)
        .with_columns(
            ((pl.col(Life.CANCELLED) - pl.col(FILL_AT)).dt.total_microseconds() / 1_000).alias(CANCEL_AFTER_FILL_MS),
            # the book is read just before the fill, or before the cancel when the fill came after it
            pl.min_horizontal(FILL_AT, Life.CANCELLED).alias(PROBE_AT))
    )
    if cycles.is_empty():
        return cycles
    probes = cycles.group_by(CYCLE).agg(pl.col(SYMBOL, ACCOUNT, SIDE).first(), pl.col(PROBE_AT).min()).with_columns(
        book_key(pl.col(SYMBOL), pl.col(ACCOUNT), opposite(pl.col(SIDE))).alias("fill_book"))
    probes = resting_quantity_before(lifecycles, probes, Life.BOOK, PROBE_AT, SPOOF_SIDE_QTY)
    probes = resting_quantity_before(lifecycles, probes, "fill_book", PROBE_AT, FILL_SIDE_QTY)
    one_sided = pl.col(SPOOF_SIDE_QTY) >= settings.min_side_imbalance * pl.col(FILL_SIDE_QTY)
    probes = probes.filter(one_sided).select(*CYCLE, SPOOF_SIDE_QTY, FILL_SIDE_QTY)
    return cycles.join(probes, on=CYCLE, how="inner")


def _findings(orders: pl.DataFrame, settings: SpoofingSettings) -> pl.DataFrame:
    """One finding per episode with at least min_cycles cycles; `orders` holds its large orders."""
    quantity = pl.col(Order.QUANTITY)
    fills = orders.unique(subset=CYCLE).group_by(SYMBOL, ACCOUNT, "episode").agg(
        pl.len().alias("cycles"), pl.col(FILL_QUANTITY).sum().alias("opposite_fill_quantity"),
        pl.col(FILL_TRADE).drop_nulls().alias("fill_trades"), pl.col(FILL_AT).min().alias("first_fill"),
        side_ratio(SPOOF_SIDE_QTY, FILL_SIDE_QTY).min().alias("min_side_imbalance"))
    episodes = orders.group_by(SYMBOL, ACCOUNT, "episode").agg(
        pl.len().alias("large_orders"),
        pl.col(SIDE).unique().sort().alias("sides"),
        quantity.sum().alias("large_quantity"),
        (pl.col(Life.FILLED).sum() / quantity.sum()).alias("large_filled_share"),
        (quantity / pl.col(NORMAL)).median().alias("size_vs_account_normal"),
        pl.col(NORMAL).first().alias(NORMAL),
        (quantity / pl.col(BOOK_TYPICAL)).median().alias("size_vs_book_median"),
        pl.col(BOOK_TYPICAL).first().alias(BOOK_TYPICAL),
        pl.col(CANCEL_AFTER_FILL_MS).median().alias("median_cancel_after_fill_ms"),
        pl.col(CANCEL_AFTER_FILL_MS).abs().max().alias("max_cancel_to_fill_ms"),
        ((pl.col(Life.CANCELLED) - pl.col(Life.PLACED)).dt.total_microseconds() / 1_000).median()
        .alias("median_order_life_ms"),
        pl.col(Life.PLACED).min().alias("placed_first"),
        pl.max_horizontal(pl.col(Life.CANCELLED).max(), pl.col(FILL_AT).max()).alias(Finding.WINDOW_END),
        pl.col(Order.ORDER_ID).sort_by(Life.PLACED).alias("order_ids"),
    ).join(fills, on=[SYMBOL, ACCOUNT, "episode"]).filter(pl.col("cycles") >= settings.min_cycles)
    rows = []
    for e in episodes.sort(Finding.WINDOW_END).iter_rows(named=True):  # one row per episode: few
        start, end = min(e["placed_first"], e["first_fill"]), e[Finding.WINDOW_END]
        lag = e["median_cancel_after_fill_ms"]
        metrics = {k: e[k] for k in (
            "cycles", "large_orders", "large_quantity", "large_filled_share", "size_vs_account_normal", NORMAL,
            "size_vs_book_median", BOOK_TYPICAL, "median_cancel_after_fill_ms", "max_cancel_to_fill_ms",
            "median_order_life_ms", "opposite_fill_quantity", "min_side_imbalance")}
        rows.append({
            Finding.PATTERN: Pattern.SPOOFING.value, Finding.SYMBOL: e[SYMBOL], Finding.USER_IDS: [e[ACCOUNT]],
            Finding.WINDOW_START: start, Finding.WINDOW_END: end,
            Finding.SCORE: 1.0 - 0.5 ** (e["cycles"] - settings.min_cycles + 1),
            Finding.EXPLANATION: (
                f"In {e[SYMBOL]} between {clock(start)} and {clock(end)} UTC, {e[ACCOUNT]} placed large "
                f"{' and '.join(e['sides'])} orders in {e['cycles']} cycles ({e['large_orders']} orders, median "
                f"{number(e['size_vs_account_normal'])}x its normal order size of {number(e[NORMAL])} and "
                f"{number(e['size_vs_book_median'])}x the book's median resting order of {number(e[BOOK_TYPICAL])}) "
                f"and cancelled them each time a median {ms(abs(lag))} {'after' if lag >= 0 else 'before'} a fill of its own "
                f"on the other side ({number(e['opposite_fill_quantity'])} filled there in all, "
                f"{imbalance_words(e['min_side_imbalance'])}); {e['large_filled_share']:.0%} of the large orders "
                f"executed."),
            Finding.EVIDENCE: evidence_list(e["order_ids"], e["fill_trades"]),
            Finding.METRICS: metrics,
        })
    return findings_frame(rows) if rows else empty_findings()
