"""Wash trading: trades that give the appearance of trading without a change in beneficial ownership.

The definition (CEA §4c(a) and the CFTC; FINRA Rule 6140 and the SEC; MAR Annex I / MiFID II): a trade, or a
series of trades, with no change in beneficial interest or market risk, or one where the change is only
between parties acting in concert. Two shapes show it on a tape that names buyer and seller:

1. **Self-trades**: buyer = seller. Nothing changes hands by construction. Per account x symbol the self-trades
   are cut into episodes wherever two consecutive ones are more than `episode_gap_s` apart; an episode with at
   least `self_trade_min_count` of them is a finding.
2. **Back-and-forth pairs**: two accounts handing the same quantity to each other and back at (nearly) one
   price. Per unordered pair x symbol the pair's trades are cut at gaps longer than `episode_gap_s` (a
   cluster) and into *legs*: maximal runs of trades in one direction (A sells to B, possibly in pieces). A
   *reversal* is a leg followed by the opposite leg returning the same quantity (within
   `quantity_tolerance`) at the same price (VWAPs within `price_tolerance_bps`). An episode is the cluster's
   legs from its first to its last leg taking part in a reversal; it is a finding when it has at least
   `pair_min_reversals` reversals, when the returned legs carry at least `pair_min_returned_share` of its
   volume and when its net position change |bought - sold| / (bought + sold) is at most
   `pair_max_net_share`. Two accounts that often meet through the book (a market maker and a busy client)
   trade varying sizes at moving prices and build a position one way: their legs rarely return the same
   quantity, so they fail the reversal and returned-share tests, and a one-way flow fails the net test. A
   market maker's buys and sells with many counterparties are many pairs of a few trades each.

All of it is sorts, shifts, group_bys and windows over the day's trades: no pairwise comparison of trades.

Score (0..1, probability-like: a product of independent pieces of evidence, each in 0..1):
- self-trades: n / (n + 1) for n self-trades in the episode (2 -> 0.67, 5 -> 0.83, 10 -> 0.91): no
  beneficial-ownership change is certain, only the chance of an isolated accident (a self-trade-prevention
  miss) shrinks with repetition;
- pairs: returned_share x (1 - net_share) x price_sameness x r / (r + 1), where r is the number of reversals
  and price_sameness = 1 - mean |VWAP difference| of the reversals / (2 x price_tolerance_bps), so one
  price gives 1 and a reversal at the tolerance 0.5.
"""
from __future__ import annotations

import math

import polars as pl
from pydantic import Field

from surveillance_pipeline.contract import Pattern, Trade
from surveillance_pipeline.detectors.base import (
    DetectionInputs,
    DetectorSettings,
    Finding,
    empty_findings,
    findings_frame,
)

US_PER_S = 1_000_000
BPS = 10_000
PRICE_DIGITS = 6  # prices in sentences: enough digits to tell a tick apart on a major


class WashTradingSettings(DetectorSettings):
    """Thresholds of the wash-trading detector (self-trades and back-and-forth pairs)."""

    episode_gap_s: float = Field(
        600.0, gt=0, le=86_400,
        description="seconds without a self-trade (of one account) or a trade (of one pair) that end an episode: "
                    "trades that paint the tape come in bursts seconds to minutes apart; 10 min keeps a burst "
                    "together and reports the same accounts coming back later as a new, separately timed episode")
    self_trade_min_count: int = Field(
        2, ge=1,
        description="self-trades of one account in one symbol within an episode to report it: one isolated "
                    "self-match is as often an algorithm crossing itself by accident (what venues' self-trade "
                    "prevention exists for) as a scheme; a second within the gap makes a pattern")
    pair_min_reversals: int = Field(
        3, ge=1,
        description="times the same quantity must come back to the account that had just delivered it (A->B "
                    "then B->A is one reversal): 3 is A->B->A->B->A, two full round trips, more than a market "
                    "maker buying back once from the client it sold to")
    quantity_tolerance: float = Field(
        0.02, ge=0, lt=1,
        description="relative difference |q2 - q1| / max(q1, q2) under which a returning leg counts as the same "
                    "quantity: wash legs return exactly what was delivered, less fees taken in the asset "
                    "(~0.1 %) and lot rounding; 2 % covers that while two independent orders' sizes rarely agree "
                    "this closely")
    price_tolerance_bps: float = Field(
        10.0, ge=0, le=1_000,
        description="largest difference, in basis points of their mean, between the VWAPs of a leg and the leg "
                    "returning it: wash legs are priced so the round trip costs the parties nothing (one price, "
                    "or a tick or a minute's drift apart); a 10 bps gap already moves 0.1 % of the notional "
                    "from one party to the other")
    pair_min_returned_share: float = Field(
        0.6, ge=0, le=1,
        description="share of the episode's volume in legs that take part in a reversal: a wash pair's volume "
                    "is mostly returned volume; a busy client and a market maker that occasionally trade the "
                    "same size back leave most of their volume unreturned")
    pair_max_net_share: float = Field(
        0.25, ge=0, le=1,
        description="largest |bought - sold| / (bought + sold) between the two accounts over the episode: no "
                    "change in beneficial ownership means the pair ends about where it started; a quarter "
                    "allows one unreturned leg in four, a counterparty building a position fails it")


def detect_wash_trading(inputs: DetectionInputs, settings: WashTradingSettings) -> pl.DataFrame:
    """Self-trade episodes and back-and-forth pair episodes, one finding each (see the module docstring)."""
    if not settings.enabled or not inputs.has_accounts:
        return empty_findings()
    trades = inputs.trades.filter(pl.col(Trade.BUYER_ID).is_not_null() & pl.col(Trade.SELLER_ID).is_not_null())
    trades = trades.with_columns(pl.col(Trade.TIMESTAMP).dt.epoch("us").alias("ts_us"))
    rows = _self_trade_findings(trades, settings) + _pair_findings(trades, settings)
    return findings_frame(rows).sort(Finding.WINDOW_START, Finding.SYMBOL)


# -- self-trades ---------------------------------------------------------------------------------------------

def _self_trade_findings(trades: pl.DataFrame, settings: WashTradingSettings) -> list[dict]:
    key = [Trade.SYMBOL, Trade.BUYER_ID]
    gap_us = settings.episode_gap_s * US_PER_S
    episodes = (
        trades.filter(pl.col(Trade.BUYER_ID) == pl.col(Trade.SELLER_ID))
        .sort([*key, "ts_us"], maintain_order=True)
        .with_columns((pl.col("ts_us").diff().over(key) > gap_us).fill_null(False).cum_sum().over(key)
                      .alias("episode"))
        .group_by([*key, "episode"])
        .agg(
            pl.len().alias("self_trades"),
            pl.col(Trade.TIMESTAMP).min().alias("start"),
            pl.col(Trade.TIMESTAMP).max().alias("end"),
            pl.col(Trade.QUANTITY).sum().alias("quantity"),
            (pl.col(Trade.PRICE) * pl.col(Trade.QUANTITY)).sum().alias("notional"),
            pl.col(Trade.PRICE).min().alias("price_min"),
            pl.col(Trade.PRICE).max().alias("price_max"),
            pl.col(Trade.TRADE_ID).sort_by("ts_us").alias("trade_ids"),
        )
        .filter(pl.col("self_trades") >= settings.self_trade_min_count)
    )
    rows = []
    for ep in episodes.iter_rows(named=True):  # one row per episode: few
        n, minutes = ep["self_trades"], (ep["end"] - ep["start"]).total_seconds() / 60
        metrics = {
            "self_trades": n, "duration_min": minutes, "quantity": ep["quantity"], "notional": ep["notional"],
            "price_min": ep["price_min"], "price_max": ep["price_max"],
            "self_trade_min_count": settings.self_trade_min_count, "episode_gap_s": settings.episode_gap_s,
        }
        account, symbol = ep[Trade.BUYER_ID], ep[Trade.SYMBOL]
        explanation = (
            f"{account} traded {symbol} with itself {n} times in {describe_minutes(minutes)} (buyer = seller on "
            f"every trade, {describe_number(ep['quantity'])} in total at "
            f"{describe_number(ep['price_min'], PRICE_DIGITS)}-{describe_number(ep['price_max'], PRICE_DIGITS)}; "
            f"{settings.self_trade_min_count} or more less than {describe_minutes(settings.episode_gap_s / 60)} "
            f"apart make an episode): no change in beneficial ownership")
        rows.append(_finding(symbol, [account], ep, n / (n + 1), explanation, metrics))
    return rows


# -- pairs trading back and forth -------------------------------------------------------------------------------

PAIR = [Trade.SYMBOL, "account_a", "account_b"]


def _pair_legs(trades: pl.DataFrame, settings: WashTradingSettings) -> pl.DataFrame:
    """The pair's trades cut into clusters (time gaps) and legs (runs in one direction), one row per leg.

    Clusters and legs are numbered across the whole sorted frame (a new pair starts a new cluster), so later
    steps shift and window over one integer key."""
    gap_us = settings.episode_gap_s * US_PER_S
    a_buys = pl.col(Trade.BUYER_ID) < pl.col(Trade.SELLER_ID)  # account_a is the smaller id
    new_pair = pl.any_horizontal([pl.col(c) != pl.col(c).shift(1) for c in PAIR]).fill_null(True)
    new_cluster = new_pair | (pl.col("ts_us").diff() > gap_us).fill_null(True)
    pair_trades = (
        trades.filter(pl.col(Trade.BUYER_ID) != pl.col(Trade.SELLER_ID))
        .with_columns(
            pl.min_horizontal(Trade.BUYER_ID, Trade.SELLER_ID).alias("account_a"),
            pl.max_horizontal(Trade.BUYER_ID, Trade.SELLER_ID).alias("account_b"),
            a_buys.alias("a_buys"),
        )
        .sort([*PAIR, "ts_us"], maintain_order=True)
        .with_columns(new_cluster.alias("new_cluster"))
        .with_columns(
            pl.col("new_cluster").cum_sum().alias("cluster"),
            (pl.col("new_cluster") | (pl.col("a_buys") != pl.col("a_buys").shift(1)).fill_null(True))
            .cum_sum().alias("leg"),
        )
    )
    return (
        pair_trades.group_by("cluster", "leg")
        .agg(
            *(pl.col(c).first() for c in PAIR), pl.col("a_buys").first(),
            pl.len().alias("trades"),
            pl.col(Trade.QUANTITY).sum().alias("quantity"),
            (pl.col(Trade.PRICE) * pl.col(Trade.QUANTITY)).sum().alias("notional"),
            pl.col(Trade.PRICE).min().alias("price_min"),
            pl.col(Trade.PRICE).max().alias("price_max"),
            pl.col(Trade.TIMESTAMP).min().alias("start"),
            pl.col(Trade.TIMESTAMP).max().alias("end"),
            pl.col(Trade.TRADE_ID).alias("trade_ids"),  # in time order: the frame is sorted
        )
        .with_columns((pl.col("notional") / pl.col("quantity")).alias("vwap"))
        .sort("leg")
    )


def _pair_episodes(legs: pl.DataFrame, settings: WashTradingSettings) -> pl.DataFrame:
    """Per cluster: the legs between the first and last reversal, aggregated, filtered by the thresholds."""
    same_cluster = pl.col("cluster") == pl.col("cluster").shift(1)
    prev_qty = pl.when(same_cluster).then(pl.col("quantity").shift(1))
    prev_vwap = pl.when(same_cluster).then(pl.col("vwap").shift(1))
    qty_diff = (pl.col("quantity") - prev_qty).abs() / pl.max_horizontal("quantity", prev_qty)
    price_diff_bps = (pl.col("vwap") - prev_vwap).abs() / ((pl.col("vwap") + prev_vwap) / 2) * BPS
    legs = legs.with_columns(price_diff_bps.alias("reversal_bps"), qty_diff.alias("reversal_qty_diff"))
    reversal = ((pl.col("reversal_qty_diff") <= settings.quantity_tolerance)
                & (pl.col("reversal_bps") <= settings.price_tolerance_bps)).fill_null(False)
    legs = (
        legs.with_columns(reversal.alias("reversal"))
        # most clusters have no reversal at all: drop them before the per-cluster work
        .filter(pl.col("reversal").sum().over("cluster") >= settings.pair_min_reversals)
    )
    next_is_reversal = pl.col("reversal").shift(-1).over("cluster").fill_null(False)
    legs = legs.with_columns((pl.col("reversal") | next_is_reversal).alias("returned"))
    in_episode = pl.col("leg").is_between(
        pl.col("leg").filter(pl.col("returned")).min().over("cluster"),
        pl.col("leg").filter(pl.col("returned")).max().over("cluster"))
    signed = pl.when(pl.col("a_buys")).then(pl.col("quantity")).otherwise(-pl.col("quantity"))
    episodes = (
        legs.filter(in_episode)
        .group_by("cluster")
        .agg(
            *(pl.col(c).first() for c in PAIR),
            pl.col("reversal").sum().alias("reversals"),
            pl.col("trades").sum().alias("trades"),
            pl.col("quantity").sum().alias("gross"),
            signed.sum().abs().alias("net"),
            pl.col("quantity").filter(pl.col("returned")).sum().alias("returned_quantity"),
            pl.col("reversal_bps").filter(pl.col("reversal")).mean().alias("mean_reversal_bps"),
            pl.col("reversal_bps").filter(pl.col("reversal")).max().alias("max_reversal_bps"),
            pl.col("reversal_qty_diff").filter(pl.col("reversal")).max().alias("max_reversal_qty_diff"),
            pl.col("notional").sum().alias("notional"),
            pl.col("price_min").min(), pl.col("price_max").max(),
            pl.col("start").min(), pl.col("end").max(),
            pl.col("trade_ids").list.explode(keep_nulls=False, empty_as_null=False),
        )
        .with_columns(
            (pl.col("net") / pl.col("gross")).alias("net_share"),
            (pl.col("returned_quantity") / pl.col("gross")).alias("returned_share"),
            ((pl.col("price_max") - pl.col("price_min")) / (pl.col("notional") / pl.col("gross")) * BPS)
            .alias("price_range_bps"),
        )
    )
    return episodes.filter(
        (pl.col("reversals") >= settings.pair_min_reversals)
        & (pl.col("returned_share") >= settings.pair_min_returned_share)
        & (pl.col("net_share") <= settings.pair_max_net_share)
    )


def _pair_findings(trades: pl.DataFrame, settings: WashTradingSettings) -> list[dict]:
    episodes = _pair_episodes(_pair_legs(trades, settings), settings)
    rows = []
    for ep in episodes.iter_rows(named=True):  # one row per episode: few
        r, minutes = ep["reversals"], (ep["end"] - ep["start"]).total_seconds() / 60
        sameness = 1 - ep["mean_reversal_bps"] / (2 * settings.price_tolerance_bps) \
            if settings.price_tolerance_bps > 0 else 1.0
        score = ep["returned_share"] * (1 - ep["net_share"]) * sameness * r / (r + 1)
        metrics = {key: ep[key] for key in (
            "trades", "reversals", "gross", "net", "net_share", "returned_share", "price_range_bps",
            "mean_reversal_bps", "max_reversal_bps", "max_reversal_qty_diff", "notional", "price_min", "price_max")}
        metrics |= {"duration_min": minutes, "pair_min_reversals": settings.pair_min_reversals,
                    "price_tolerance_bps": settings.price_tolerance_bps,
                    "pair_max_net_share": settings.pair_max_net_share,
                    "pair_min_returned_share": settings.pair_min_returned_share}
        a, b, symbol = ep["account_a"], ep["account_b"], ep[Trade.SYMBOL]
        explanation = (
            f"{a} and {b} traded {symbol} back and forth {ep['trades']} times in {describe_minutes(minutes)} "
            f"({r} times the same quantity came back, threshold {settings.pair_min_reversals}) at prices within "
            f"{ep['price_range_bps']:.1f} bps, gross {describe_number(ep['gross'])}, net "
            f"{describe_number(ep['net'])} ({ep['net_share']:.1%}, at most {settings.pair_max_net_share:.0%} "
            f"allowed): no change in beneficial ownership")
        rows.append(_finding(symbol, [a, b], ep, max(0.0, min(1.0, score)), explanation, metrics))
    return rows


# -- shared -----------------------------------------------------------------------------------------------------

def _finding(symbol: str, accounts: list[str], ep: dict, score: float, explanation: str, metrics: dict) -> dict:
    return {
        Finding.PATTERN: Pattern.WASH_TRADING.value, Finding.SYMBOL: symbol, Finding.USER_IDS: sorted(accounts),
        Finding.WINDOW_START: ep["start"], Finding.WINDOW_END: ep["end"], Finding.SCORE: score,
        Finding.EXPLANATION: explanation, Finding.EVIDENCE: [f"trade:{t}" for t in ep["trade_ids"]],
        Finding.METRICS: metrics,
    }


def describe_minutes(minutes: float) -> str:
    """A duration for an explanation sentence: seconds under two minutes, minutes under two hours, else hours."""
    if minutes < 2:
        return f"{minutes * 60:.0f} s"
    if minutes < 120:
        return f"{minutes:.1f} min"
    return f"{minutes / 60:.1f} h"


def describe_number(value: float, digits: int = 4) -> str:
    """A quantity or price with at least `digits` significant digits, in plain notation (60,012.5; 0.01230)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"
