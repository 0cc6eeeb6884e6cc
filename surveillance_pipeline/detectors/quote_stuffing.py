"""Quote stuffing: bursts of hundreds of order messages a second from one account, almost all pulled at once.

The definition (ESMA MAR Annex II, 1(a)/(b) indicators; ESMA guidelines on systems and controls): "entering
large numbers of orders and/or cancellations/updates to orders so as to create uncertainty for other
participants, slowing down their process and/or to camouflage one's own strategy". In order events: one
account's messages (new, cancel, modify) in one symbol reach hundreds a second, and the orders it places then
live only milliseconds and almost never execute: they were never meant to trade, only to load the feed.

A burst here is a run of one account's messages in one symbol in which every message lies in some one-second
window holding >= `min_messages_per_second` of that account's messages in that symbol (a trailing rolling
count: windows are not cut at whole seconds), consecutive messages less than a second apart. It counts when
the orders placed in it were almost all cancelled quickly: a share >= `min_fast_cancel_share` cancelled within
`fast_cancel_ms` of their `new`, and at most `max_filled_share` of them executed at all. Counting bursts of one
account in one symbol less than `episode_gap_s` apart form one episode and one finding.

A market maker's steady flow (tens of messages a second, quotes resting for seconds) stays below the rate and
far from the fast-cancel share; a grid of resting orders placed at once has the rate but not the cancels.

Cost: messages are first counted per account x symbol x whole second (one group-by); only the seconds that
could hold a dense window (this second's count plus the previous one's reach the rate) go through the rolling
count and the order look-ups.

Score: fast_cancel_share x min(1, 1/2 + 1/2 log2(peak rate / min_messages_per_second)): one half at the rate
threshold, full at twice it.
"""
from __future__ import annotations

import math
from datetime import timedelta

import polars as pl
from pydantic import Field

from surveillance_pipeline.contract import Order, OrderEvent, Pattern
from surveillance_pipeline.detectors.base import (
    DetectionInputs,
    DetectorSettings,
    Finding,
    empty_findings,
    findings_frame,
)
from surveillance_pipeline.detectors.orderbook import (
    MESSAGE_EVENTS,
    ORDER_KEY,
    Life,
    chain_ids,
    clock,
    evidence_list,
    ms,
    number,
    order_key,
    order_lifecycles,
)

ACCOUNT, SYMBOL, AT = Order.USER_ID, Order.SYMBOL, Order.TIMESTAMP
PAIR = [SYMBOL, ACCOUNT]
RATE_WINDOW = timedelta(seconds=1)  # the unit of the message rate
SECOND, RATE = "second", "messages_per_second"


class QuoteStuffingSettings(DetectorSettings):
    min_messages_per_second: int = Field(
        100, ge=2, le=1_000_000,
        description="messages (new, cancel, modify) of one account in one symbol within one second that make a "
                    "burst: 'hundreds per second' at its lower edge (fifty fleeting orders, a new and a cancel "
                    "each), above a market maker's steady tens; the fast-cancel share, not the rate alone, is what "
                    "separates stuffing from fast quoting")
    fast_cancel_ms: int = Field(
        250, ge=1, le=10_000,
        description="an order of the burst cancelled within this many ms of its new is 'cancelled within "
                    "milliseconds': below human reaction time, far shorter than a quote meant to trade rests "
                    "(seconds)")
    min_fast_cancel_share: float = Field(
        0.9, ge=0.0, le=1.0,
        description="share of the burst's orders cancelled that fast: 'almost all'")
    max_filled_share: float = Field(
        0.05, ge=0.0, le=1.0,
        description="share of the burst's orders that executed at all: negligible (the orders were not meant to "
                    "trade)")
    episode_gap_s: float = Field(
        600.0, gt=0.0, le=86_400.0,
        description="bursts of one account in one symbol less than this many seconds apart are one episode "
                    "(one alert per campaign, not per burst)")
    max_evidence_orders: int = Field(
        100, ge=1, le=100_000,
        description="order ids listed as evidence per finding (the first ones in time); the counts are in the "
                    "metrics")


def detect_quote_stuffing(inputs: DetectionInputs, settings: QuoteStuffingSettings) -> pl.DataFrame:
    if not settings.enabled or not inputs.has_orders:
        return empty_findings()
    messages = inputs.orders.lazy().filter(pl.col(Order.EVENT).is_in(MESSAGE_EVENTS))
    dense = _dense_messages(messages, settings)
    if dense.is_empty():
        return empty_findings()
    bursts = _bursts(inputs, dense, settings)
    if bursts.is_empty():
        return empty_findings()
    market_rate = _market_rates(inputs, messages)
    episodes = chain_ids(bursts, PAIR, "burst_start", timedelta(seconds=settings.episode_gap_s), "episode")
    return _findings(episodes.join(market_rate, on=SYMBOL, how="left"), settings)


def _dense_messages(messages: pl.LazyFrame, settings: QuoteStuffingSettings) -> pl.DataFrame:
    """The messages lying in a dense window (>= the rate within one second) with their trailing rate."""
    # account x symbol x whole second as one 64-bit cell key: a group-by on one integer, not on two strings
    pair = (pl.col(ACCOUNT).hash(seed=1) ^ pl.col(SYMBOL).hash(seed=2)).alias("pair")
    second = (pl.col(AT).dt.epoch("us") // 1_000_000).alias(SECOND)

    def cell(offset: int = 0) -> pl.Expr:
        return (pl.col("pair") ^ (pl.col(SECOND) + offset).hash(seed=3)).alias("cell")

    keyed = messages.with_columns(pair, second).with_columns(cell())
    per_second = keyed.group_by("cell").agg(pl.col("pair").first(), pl.col(SECOND).first(), pl.len().alias("n"))
    previous = per_second.select(cell(1), pl.col("n").alias("n_before"))  # this second, seen from the next one
    could_be_dense = (
        per_second.join(previous, on="cell", how="left")
        .filter(pl.col("n") + pl.col("n_before").fill_null(0) >= settings.min_messages_per_second)
    )
    cells = pl.concat([could_be_dense.select(cell()), could_be_dense.select(cell(-1))]).unique()
    kept = (keyed.join(cells, on="cell", how="semi")
            .select(*PAIR, AT, Order.EVENT, Order.ORDER_ID)
            .sort(*PAIR, AT).collect())
    if kept.is_empty():
        return kept
    kept = kept.with_columns(pl.lit(1, pl.UInt32).alias("one")).with_columns(
        pl.col("one").rolling_sum_by(AT, RATE_WINDOW).over(PAIR).alias(RATE)).drop("one")
    # a message is in a dense window when a dense window's end (a message with the full rate) follows within 1 s
    ends = kept.filter(pl.col(RATE) >= settings.min_messages_per_second).select(
        *PAIR, pl.col(AT).alias("dense_end")).unique().sort("dense_end")
    if ends.is_empty():
        return ends
    located = kept.sort(AT).join_asof(ends, left_on=AT, right_on="dense_end", by=PAIR, strategy="forward",
                                      check_sortedness=False)
    return located.filter((pl.col("dense_end") - pl.col(AT)) < RATE_WINDOW).drop("dense_end")


def _bursts(inputs: DetectionInputs, dense: pl.DataFrame, settings: QuoteStuffingSettings) -> pl.DataFrame:
    """Counting bursts: dense messages chained (< 1 s apart) per account x symbol, with their orders' outcomes."""
    dense = chain_ids(dense, PAIR, AT, RATE_WINDOW, "burst")
    pairs = dense.select(PAIR).unique()
    own_orders = inputs.orders.join(pairs, on=PAIR, how="semi")
    lifecycles = order_lifecycles(own_orders, inputs.trades)
    life_ms = (pl.col(Life.CANCELLED) - pl.col(Life.PLACED)).dt.total_microseconds() / 1_000
    placed = (
        dense.filter(pl.col(Order.EVENT) == OrderEvent.NEW.value)
        .with_columns(order_key())
        .join(lifecycles.select(*ORDER_KEY, Life.CANCELLED, Life.PLACED, Life.FILLED), on=ORDER_KEY, how="inner")
        .unique(subset=ORDER_KEY, keep="first")
        .group_by(*PAIR, "burst").agg(
            pl.len().alias("orders"),
            (life_ms <= settings.fast_cancel_ms).fill_null(False).mean().alias("fast_cancel_share"),
            (pl.col(Life.FILLED) > 0).sum().alias("filled_orders"),
            life_ms.median().alias("median_life_ms"),
            pl.col(Order.ORDER_ID).sort_by(Life.PLACED).alias("order_ids"),
        )
    )
    messages = dense.group_by(*PAIR, "burst").agg(
        pl.len().alias("messages"), pl.col(RATE).max().alias("peak_rate"),
        pl.col(AT).min().alias("burst_start"), pl.col(AT).max().alias("burst_end"))
    return (
        messages.join(placed, on=[*PAIR, "burst"], how="inner")
        .filter((pl.col("fast_cancel_share") >= settings.min_fast_cancel_share)
                & (pl.col("filled_orders") <= settings.max_filled_share * pl.col("orders")))
    )


def _market_rates(inputs: DetectionInputs, messages: pl.LazyFrame) -> pl.DataFrame:
    """Each symbol's average message rate over the input's span (all accounts): what the burst is compared with."""
    if inputs.start is not None:
        span_s = pl.lit((inputs.end - inputs.start).total_seconds())
    else:
        span_s = pl.max_horizontal((pl.col(AT).max() - pl.col(AT).min()).dt.total_seconds(), pl.lit(1))
    return messages.group_by(SYMBOL).agg((pl.len() / span_s).alias("market_rate")).collect()


def _findings(bursts: pl.DataFrame, settings: QuoteStuffingSettings) -> pl.DataFrame:
    episodes = bursts.group_by(*PAIR, "episode").agg(
        pl.len().alias("bursts"), pl.col("messages").sum(), pl.col("orders").sum(),
        pl.col("peak_rate").max().alias("peak_messages_per_second"),
        ((pl.col("fast_cancel_share") * pl.col("orders")).sum() / pl.col("orders").sum()).alias("fast_cancel_share"),
        pl.col("filled_orders").sum(),
        pl.col("median_life_ms").median().alias("median_order_life_ms"),
        pl.col("burst_start").min(), pl.col("burst_end").max(),
        ((pl.col("burst_end") - pl.col("burst_start")).dt.total_microseconds() / 1_000).sum()
        .alias("burst_duration_ms"),
        pl.col("market_rate").first().alias("market_messages_per_second"),
        pl.col("order_ids").sort_by("burst_start").list.explode(keep_nulls=False, empty_as_null=False),
    )
    rows = []
    for e in episodes.sort("burst_end").iter_rows(named=True):  # one row per episode: few
        start, end = e["burst_start"], e["burst_end"]
        peak = e["peak_messages_per_second"]
        strength = min(1.0, 0.5 + 0.5 * math.log2(peak / settings.min_messages_per_second))
        metrics = {k: e[k] for k in (
            "bursts", "messages", "orders", "peak_messages_per_second", "fast_cancel_share", "filled_orders",
            "median_order_life_ms", "burst_duration_ms", "market_messages_per_second")}
        rows.append({
            Finding.PATTERN: Pattern.QUOTE_STUFFING.value, Finding.SYMBOL: e[SYMBOL], Finding.USER_IDS: [e[ACCOUNT]],
            Finding.WINDOW_START: start, Finding.WINDOW_END: end,
            Finding.SCORE: e["fast_cancel_share"] * strength,
            Finding.EXPLANATION: (
                f"{e[ACCOUNT]} sent {e['messages']:,} order messages in {e[SYMBOL]} in {e['bursts']} burst(s) "
                f"between {clock(start)} and {clock(end)} UTC, peaking at {peak:,} per second (the whole market "
                f"averages {number(e['market_messages_per_second'])} per second), and cancelled "
                f"{e['fast_cancel_share']:.1%} of its {e['orders']:,} orders within {settings.fast_cancel_ms} ms "
                f"(median life {ms(e['median_order_life_ms'])}); {e['filled_orders']} executed."),
            Finding.EVIDENCE: evidence_list(e["order_ids"], limit=settings.max_evidence_orders),
            Finding.METRICS: metrics,
        })
    return findings_frame(rows) if rows else empty_findings()
