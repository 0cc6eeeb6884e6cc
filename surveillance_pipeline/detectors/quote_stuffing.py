"""Quote stuffing: bursts of order messages, far above the accounts' own usual rate, almost all pulled at once.

The definition (ESMA MAR Annex II, 1(a)/(b) indicators; ESMA guidelines on systems and controls): "entering
large numbers of orders and/or cancellations/updates to orders so as to create uncertainty for other
participants, slowing down their process and/or to camouflage one's own strategy". In order events: messages
(new, cancel, modify) in one symbol suddenly reach hundreds a second - from one account, or from a few acting
together - far above what those accounts usually send there, and the orders placed then live only fractions of
a second and almost never execute: they were never meant to trade, only to load the feed.

A burst here is built in three steps, all group-bys, rolling counts and `join_asof`s:
1. an account surges in a symbol: its messages in a one-second window (a trailing rolling count) reach
   `min_account_messages_per_second` and `min_rate_vs_baseline` x its own average rate in that symbol over
   `baseline_window_s` before to as long after (the window holding the burst itself): a burst, not the steady
   flow a market maker or a high-frequency quoter keeps up for hours;
2. the surging messages of all accounts in the symbol reach `min_messages_per_second` in a one-second window
   (accounts that burst together in the same symbol and second add up, so that splitting a burst over a few
   accounts does not hide it); every message in such a window belongs to the burst, consecutive messages less
   than a second apart;
3. each account of the burst counts only if the orders it placed in it were almost all cancelled quickly: a
   share >= `min_fast_cancel_share` cancelled within `fast_cancel_ms` of their `new`, and at most
   `max_filled_share` of them executed at all; what those accounts sent must still reach
   `min_messages_per_second` in a one-second window.
Bursts in one symbol less than `episode_gap_s` apart form one episode and one finding, naming its accounts.

A market maker's steady flow (tens of messages a second, quotes resting for seconds) and a high-frequency
quoter's steady flow of short-lived quotes stay near their own average rate; a grid of resting orders placed at
once has the rate but not the cancels.

Cost: messages are first counted per account x symbol x whole second (one group-by); only the seconds that
could hold a surge (this second's count plus the previous one's reach the account floor) go through the baseline
look-ups (cumulative counts and two `join_asof`s), and only those that could also reach the baseline multiple -
not a steady quoter's - through the rolling counts and the order look-ups.

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
SECOND, RATE, OWN_RATE, BASELINE = "second", "messages_per_second", "own_messages_per_second", "baseline_rate"


class QuoteStuffingSettings(DetectorSettings):
    min_messages_per_second: int = Field(
        100, ge=2, le=1_000_000,
        description="messages (new, cancel, modify) in one symbol within one second, from the burst's accounts "
                    "together, that make a burst: 'hundreds per second' at its lower edge (fifty fleeting orders, "
                    "a new and a cancel each), above a market maker's steady tens")
    min_account_messages_per_second: int = Field(
        20, ge=1, le=1_000_000,
        description="an account takes part in a burst with at least this many messages of its own in one second "
                    "(a fifth of the burst rate): a few accounts splitting a burst between them each still send a "
                    "flood; an ordinary participant's few messages that happen to fall in the same second do not "
                    "join it")
    min_rate_vs_baseline: float = Field(
        4.0, ge=1.0, le=1_000_000.0,
        description="the account's rate in the burst is at least this many times its own average rate in the "
                    "symbol over the surrounding baseline window: a burst, not a steady flow - a steady quoter's "
                    "busiest second stays within about twice its average (Poisson: 60 a second on average "
                    "peaks near 100 over hours), while a burst of a minute is over ten times the average of the "
                    "twenty minutes around it")
    baseline_window_s: float = Field(
        600.0, gt=0.0, le=86_400.0,
        description="the account's average rate is taken from this many seconds before each second to as long "
                    "after (the burst included): long against any burst, short enough to follow a quoter's "
                    "changing activity over the day")
    fast_cancel_ms: int = Field(
        1_000, ge=1, le=10_000,
        description="an order of the burst cancelled within this many ms of its new is fleeting: gone before "
                    "anyone could act on it by hand, far shorter than a quote meant to trade rests (the market "
                    "microstructure literature calls orders cancelled within two seconds 'fleeting', Hasbrouck & "
                    "Saar 2009; one second is the stricter half); the rate against the account's own baseline, not "
                    "the latency alone, separates stuffing from fast quoting")
    min_fast_cancel_share: float = Field(
        0.9, ge=0.0, le=1.0,
        description="share of each account's orders in the burst cancelled that fast: 'almost all'")
    max_filled_share: float = Field(
        0.05, ge=0.0, le=1.0,
        description="share of each account's orders in the burst that executed at all: negligible (the orders "
                    "were not meant to trade)")
    episode_gap_s: float = Field(
        600.0, gt=0.0, le=86_400.0,
        description="bursts in one symbol less than this many seconds apart are one episode (one alert per "
                    "campaign, not per burst)")
    max_evidence_orders: int = Field(
        100, ge=1, le=100_000,
        description="order ids listed as evidence per finding (the first ones in time); the counts are in the "
                    "metrics")


def detect_quote_stuffing(inputs: DetectionInputs, settings: QuoteStuffingSettings) -> pl.DataFrame:
    if not settings.enabled or not inputs.has_orders:
        return empty_findings()
    messages = inputs.orders.lazy().filter(pl.col(Order.EVENT).is_in(MESSAGE_EVENTS))
    surging = _surging_messages(inputs, messages, settings)
    if surging.is_empty():
        return empty_findings()
    dense = _dense(surging, [SYMBOL], settings.min_messages_per_second)
    if dense.is_empty():
        return empty_findings()
    bursts = _bursts(inputs, dense, settings)
    if bursts.is_empty():
        return empty_findings()
    market_rate = _market_rates(inputs, messages)
    episodes = chain_ids(bursts, [SYMBOL], "burst_start", timedelta(seconds=settings.episode_gap_s), "episode")
    return _findings(episodes.join(market_rate, on=SYMBOL, how="left"), settings)


def _surging_messages(inputs: DetectionInputs, messages: pl.LazyFrame,
                      settings: QuoteStuffingSettings) -> pl.DataFrame:
    """Messages of an account in a symbol that lie in a one-second window holding >= min_account_messages_per_second
    of its messages there and >= min_rate_vs_baseline x its average rate around (OWN_RATE, BASELINE)."""
    # account x symbol x whole second as one 64-bit cell key: a group-by on one integer, not on two strings
    pair = (pl.col(ACCOUNT).hash(seed=1) ^ pl.col(SYMBOL).hash(seed=2)).alias("pair")
    second = (pl.col(AT).dt.epoch("us") // 1_000_000).alias(SECOND)

    def cell(offset: int = 0) -> pl.Expr:
        return (pl.col("pair") ^ (pl.col(SECOND) + offset).hash(seed=3)).alias("cell")

    keyed = messages.with_columns(pair, second).with_columns(cell())
    per_second = keyed.group_by("cell").agg(pl.col("pair").first(), pl.col(SECOND).first(), pl.len().alias("n"))
    previous = per_second.select(cell(1), pl.col("n").alias("n_before"))  # this second, seen from the next one
    # a one-second window ending in this second holds at most this second's and the previous one's messages
    reach = (pl.col("n") + pl.col("n_before").fill_null(0)).alias("reach")
    could_surge = (
        per_second.join(previous, on="cell", how="left").select("pair", SECOND, reach)
        .filter(pl.col("reach") >= settings.min_account_messages_per_second).collect()
    )
    if could_surge.is_empty():
        return pl.DataFrame()
    baselines = _baselines(inputs, per_second, could_surge.select("pair", SECOND), settings)
    # ... and a steady flow never reaches the multiple of its own average there: its messages are not read again
    could_surge = could_surge.join(baselines, on=["pair", SECOND]).filter(
        pl.col("reach") >= settings.min_rate_vs_baseline * pl.col(BASELINE))
    if could_surge.is_empty():
        return pl.DataFrame()
    cells = pl.concat([could_surge.lazy().select(cell()), could_surge.lazy().select(cell(-1))]).unique()
    kept = (keyed.join(cells, on="cell", how="semi")
            .select("pair", SECOND, *PAIR, AT, Order.EVENT, Order.ORDER_ID)
            .sort("pair", AT).collect())
    kept = kept.with_columns(pl.lit(1, pl.UInt32).alias("one")).with_columns(
        pl.col("one").rolling_sum_by(AT, RATE_WINDOW).over("pair").alias(OWN_RATE)).drop("one")
    # a window's end surges when it holds the account floor and the multiple of the account's baseline there
    # (a window ending in a second that failed the look-ahead above cannot pass: its count is within that reach)
    ends = (kept.join(could_surge.select("pair", SECOND, BASELINE), on=["pair", SECOND], how="inner")
            .filter((pl.col(OWN_RATE) >= settings.min_account_messages_per_second)
                    & (pl.col(OWN_RATE) >= settings.min_rate_vs_baseline * pl.col(BASELINE)))
            .select("pair", pl.col(AT).alias("surge_end"), BASELINE).unique(subset=["pair", "surge_end"])
            .sort("surge_end"))
    if ends.is_empty():
        return pl.DataFrame()
    located = kept.sort(AT).join_asof(ends, left_on=AT, right_on="surge_end", by="pair", strategy="forward",
                                      check_sortedness=False)
    return located.filter((pl.col("surge_end") - pl.col(AT)) < RATE_WINDOW).drop("surge_end", "pair", SECOND)


def _baselines(inputs: DetectionInputs, per_second: pl.LazyFrame, probes: pl.DataFrame,
               settings: QuoteStuffingSettings) -> pl.DataFrame:
    """BASELINE for each probed (pair, second): the pair's messages per second from baseline_window_s before to as
    long after (clipped to the input's day), from cumulative counts per pair and two join_asofs."""
    half = int(settings.baseline_window_s)
    counts = (per_second.join(probes.lazy().select("pair").unique(), on="pair", how="semi")
              .select("pair", SECOND, "n").sort("pair", SECOND)
              .with_columns(pl.col("n").cum_sum().over("pair").alias("cum"))
              .select("pair", pl.col(SECOND).alias("at_second"), "cum").sort("at_second").collect())
    # clipped to the day when the input is one (nothing is known outside it); otherwise the full window, seconds
    # without messages counting as silent
    if inputs.start is not None:
        first, last = int(inputs.start.timestamp()), int(inputs.end.timestamp()) - 1
    else:
        first, last = int(probes[SECOND].min()) - half, int(probes[SECOND].max()) + half
    probes = probes.with_columns(
        pl.max_horizontal(pl.col(SECOND) - half, pl.lit(first)).alias("lo"),
        pl.min_horizontal(pl.col(SECOND) + half, pl.lit(last)).alias("hi"))
    upto = probes.sort("hi").join_asof(counts, left_on="hi", right_on="at_second", by="pair", strategy="backward",
                                       check_sortedness=False).select("pair", SECOND, pl.col("cum").alias("upto"))
    below = probes.with_columns((pl.col("lo") - 1).alias("below_at")).sort("below_at").join_asof(
        counts, left_on="below_at", right_on="at_second", by="pair", strategy="backward",
        check_sortedness=False).select("pair", SECOND, pl.col("cum").alias("below"))
    return (probes.join(upto, on=["pair", SECOND]).join(below, on=["pair", SECOND])
            .select("pair", SECOND, ((pl.col("upto").fill_null(0) - pl.col("below").fill_null(0))
                                     / pl.max_horizontal(pl.col("hi") - pl.col("lo") + 1, pl.lit(1))).alias(BASELINE)))


def _dense(messages: pl.DataFrame, by: list[str], floor: int) -> pl.DataFrame:
    """The messages lying in a one-second window holding >= floor of the messages of their `by` group, with RATE (the
    trailing count at the message)."""
    kept = messages.sort(*by, AT).with_columns(pl.lit(1, pl.UInt32).alias("one")).with_columns(
        pl.col("one").rolling_sum_by(AT, RATE_WINDOW).over(by).alias(RATE)).drop("one")
    ends = kept.filter(pl.col(RATE) >= floor).select(*by, pl.col(AT).alias("dense_end")).unique().sort("dense_end")
    if ends.is_empty():
        return ends
    located = kept.sort(AT).join_asof(ends, left_on=AT, right_on="dense_end", by=by, strategy="forward",
                                      check_sortedness=False)
    return located.filter((pl.col("dense_end") - pl.col(AT)) < RATE_WINDOW).drop("dense_end")


def _bursts(inputs: DetectionInputs, dense: pl.DataFrame, settings: QuoteStuffingSettings) -> pl.DataFrame:
    """Counting bursts: dense messages chained (< 1 s apart) per symbol, the accounts whose orders in them were
    fleeting, and the burst's rate from those accounts alone."""
    dense = chain_ids(dense, [SYMBOL], AT, RATE_WINDOW, "burst")
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
        .filter((pl.col("fast_cancel_share") >= settings.min_fast_cancel_share)
                & (pl.col("filled_orders") <= settings.max_filled_share * pl.col("orders")))
    )
    if placed.is_empty():
        return pl.DataFrame()
    # the burst again, from the accounts that qualified alone: it must still reach the rate
    kept = _dense(dense.join(placed.select(*PAIR, "burst"), on=[*PAIR, "burst"], how="semi").drop(RATE),
                  [SYMBOL, "burst"], settings.min_messages_per_second)
    if kept.is_empty():
        return pl.DataFrame()
    per_account = kept.group_by(*PAIR, "burst").agg(pl.len().alias("messages"), pl.col(OWN_RATE).max(),
                                                    pl.col(BASELINE).min())
    messages = kept.group_by(SYMBOL, "burst").agg(
        pl.col(RATE).max().alias("peak_rate"), pl.col(AT).min().alias("burst_start"),
        pl.col(AT).max().alias("burst_end"))
    return (placed.join(per_account, on=[*PAIR, "burst"], how="inner")
            .join(messages, on=[SYMBOL, "burst"], how="inner"))


def _market_rates(inputs: DetectionInputs, messages: pl.LazyFrame) -> pl.DataFrame:
    """Each symbol's average message rate over the input's span (all accounts): what the burst is compared with."""
    if inputs.start is not None:
        span_s = pl.lit((inputs.end - inputs.start).total_seconds())
    else:
        span_s = pl.max_horizontal((pl.col(AT).max() - pl.col(AT).min()).dt.total_seconds(), pl.lit(1))
    return messages.group_by(SYMBOL).agg((pl.len() / span_s).alias("market_rate")).collect()


def _findings(bursts: pl.DataFrame, settings: QuoteStuffingSettings) -> pl.DataFrame:
    """One finding per episode (symbol x chain of bursts); `bursts` has one row per account x burst."""
    per_burst = bursts.group_by(SYMBOL, "episode", "burst").agg(
        pl.col("burst_start", "burst_end", "peak_rate").first())
    spans = per_burst.group_by(SYMBOL, "episode").agg(
        pl.len().alias("bursts"), pl.col("peak_rate").max().alias("peak_messages_per_second"),
        pl.col("burst_start").min(), pl.col("burst_end").max(),
        ((pl.col("burst_end") - pl.col("burst_start")).dt.total_microseconds() / 1_000).sum()
        .alias("burst_duration_ms"))
    episodes = bursts.group_by(SYMBOL, "episode").agg(
        pl.col(ACCOUNT).unique().sort().alias("accounts"),
        pl.col("messages").sum(), pl.col("orders").sum(),
        ((pl.col("fast_cancel_share") * pl.col("orders")).sum() / pl.col("orders").sum()).alias("fast_cancel_share"),
        pl.col("filled_orders").sum(),
        pl.col("median_life_ms").median().alias("median_order_life_ms"),
        pl.col(OWN_RATE).max().alias("peak_account_messages_per_second"),
        (pl.col(OWN_RATE) / pl.col(BASELINE)).min().alias("min_rate_vs_baseline"),
        pl.col("market_rate").first().alias("market_messages_per_second"),
        pl.col("order_ids").sort_by("burst_start").list.explode(keep_nulls=False, empty_as_null=False),
    ).join(spans, on=[SYMBOL, "episode"])
    rows = []
    for e in episodes.sort("burst_end").iter_rows(named=True):  # one row per episode: few
        start, end = e["burst_start"], e["burst_end"]
        peak = e["peak_messages_per_second"]
        strength = min(1.0, 0.5 + 0.5 * math.log2(peak / settings.min_messages_per_second))
        accounts = e["accounts"]
        who = accounts[0] if len(accounts) == 1 else f"{len(accounts)} accounts together ({', '.join(accounts)})"
        metrics = {k: e[k] for k in (
            "bursts", "messages", "orders", "peak_messages_per_second", "peak_account_messages_per_second",
            "min_rate_vs_baseline", "fast_cancel_share", "filled_orders", "median_order_life_ms",
            "burst_duration_ms", "market_messages_per_second")}
        metrics["accounts"] = len(accounts)
        vs_own = e["min_rate_vs_baseline"]
        rows.append({
            Finding.PATTERN: Pattern.QUOTE_STUFFING.value, Finding.SYMBOL: e[SYMBOL], Finding.USER_IDS: accounts,
            Finding.WINDOW_START: start, Finding.WINDOW_END: end,
            Finding.SCORE: e["fast_cancel_share"] * strength,
            Finding.EXPLANATION: (
                f"{who} sent {e['messages']:,} order messages in {e[SYMBOL]} in {e['bursts']} burst(s) "
                f"between {clock(start)} and {clock(end)} UTC, peaking at {peak:,} per second "
                f"({'at least ' + number(vs_own) + 'x' if vs_own is not None else 'far above'} the account's own "
                f"average rate there; the whole market averages {number(e['market_messages_per_second'])} per "
                f"second), and cancelled {e['fast_cancel_share']:.1%} of its {e['orders']:,} orders within "
                f"{ms(settings.fast_cancel_ms)} (median life {ms(e['median_order_life_ms'])}); "
                f"{e['filled_orders']} executed."),
            Finding.EVIDENCE: evidence_list(e["order_ids"], limit=settings.max_evidence_orders),
            Finding.METRICS: metrics,
        })
    return findings_frame(rows) if rows else empty_findings()
