"""Wash trading: trades that give the appearance of trading without a change in beneficial ownership.

The definition (CEA §4c(a) and the CFTC; FINRA Rule 6140 and the SEC; MAR Annex I / MiFID II): a trade, or a
series of trades, with no change in beneficial interest or market risk, or one where the change is only
between parties acting in concert. Two shapes show it on a tape that names buyer and seller:

1. **Self-trades**: buyer = seller. Nothing changes hands by construction. Per account x symbol the self-trades
   are cut into episodes wherever two consecutive ones are more than `episode_gap_s` apart; an episode with at
   least `self_trade_min_count` of them is a finding.
2. **Back-and-forth pairs**: two accounts handing quantities to each other and back, so that neither's position
   changes. Per unordered pair x symbol the pair's trades are cut at gaps longer than `episode_gap_s` (an
   episode) and judged as a whole, never by picking a favourable stretch out of a longer relationship. The
   pair's *mutual position* (what the first account holds from its trades with the second) is followed trade
   by trade; a *round trip* leaves flat, goes one way (one trade or several), comes back the other way (one
   or several) and is flat again (within `quantity_tolerance` of the largest position open between them).
   Sizes may change from round to round and either account may deliver first: A->B, B->A, B->A, A->B is two
   round trips. The episode is a finding when
   - it has at least `pair_min_round_trips` round trips,
   - at least `pair_min_returned_share` of its gross mutual volume went out and came back in them,
   - its net |bought - sold| / (bought + sold) is at most `pair_max_net_share`,
   - each quantity came back at about the price it went out (volume-weighted mean gap between a round trip's
     VWAPs out and back at most `price_tolerance_bps`), and
   - the two accounts trade predominantly with each other: for each, trades with the other make up at least
     `pair_min_mutual_share` of all its trades in the symbol (by count or by volume, whichever is larger)
     from one gap before the episode to one gap after it.
   What keeps legitimate look-alikes quiet: two accounts that meet through the book many times (a market
   maker and a busy client, an algorithm taking liquidity in one clip size from the maker at the touch) trade
   in directions independent of each other, so their mutual position wanders like a random walk and most of
   their volume sits in long excursions that are not clean round trips; a client building a position fails
   the net test; and a market maker trades with many accounts, so a client's trades are a small part of its
   flow (the mutual-share test), which is what keeps a short chance run of alternating same-size trades with
   one maker quiet. A pair trading only with each other at prices that move with the market (two scalpers
   carrying risk) fails the price test.

All of it is sorts, shifts, group_bys and windows over the day's trades: no pairwise comparison of trades.

Score (0..1, probability-like: a product of independent pieces of evidence, each in 0..1):
- self-trades: n / (n + 1) for n self-trades in the episode (2 -> 0.67, 5 -> 0.83, 10 -> 0.91): no
  beneficial-ownership change is certain, only the chance of an isolated accident (a self-trade-prevention
  miss) shrinks with repetition;
- pairs: returned_share x (1 - net_share) x price_sameness x r / (r + 1), where r is the number of round
  trips and price_sameness = 1 - the mean price gap of the round trips / (2 x price_tolerance_bps), so one
  price gives 1 and round trips at the tolerance 0.5. The mutual share is a gate, not a factor.
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
    """Thresholds of the wash-trading detector (self-trades and pairs trading back and forth)."""

    episode_gap_s: float = Field(
        1_800.0, gt=0, le=86_400,
        description="seconds without a self-trade (of one account) or a trade (of one pair) that end an episode. "
                    "Between the parties acting in concert nothing is at risk however long a delivered quantity "
                    "waits to come back, so the definition sets no clock; the gap only decides what is reported "
                    "as one series: 30 min keeps a slow series (a round every few minutes, a return after ten) "
                    "together and reports the same accounts coming back hours later as a new episode")
    self_trade_min_count: int = Field(
        2, ge=1,
        description="self-trades of one account in one symbol within an episode to report it: one isolated "
                    "self-match is as often an algorithm crossing itself by accident (what venues' self-trade "
                    "prevention exists for) as a scheme; a second within the gap makes a pattern")
    pair_min_round_trips: int = Field(
        2, ge=1,
        description="round trips between the two accounts: one of them delivers a quantity to the other (in one "
                    "trade or several) and gets it back (in one or several), their mutual position back to flat. "
                    "One round trip is what any two accounts produce that meet twice through the book; a second "
                    "makes it a series of trades with no change in beneficial ownership")
    quantity_tolerance: float = Field(
        0.02, ge=0, lt=1,
        description="how close to flat, relative to the largest position the two accounts have had open with each "
                    "other in the episode, their mutual position must come back to end a round trip: wash legs "
                    "return what was delivered, give or take lot rounding and fees taken in the asset (~0.1 %); "
                    "2 % covers that while a position two independent traders happen to leave between them "
                    "rarely comes back this exactly")
    price_tolerance_bps: float = Field(
        20.0, ge=0, le=1_000,
        description="largest volume-weighted mean difference, in basis points, between the price at which a round "
                    "trip's quantity went out and the price at which it came back: with no change in market risk "
                    "the round trip costs the parties (about) nothing, priced at the market of its moment, inside "
                    "the spread (up to ~10 bps on a small cap) plus the drift of the minutes between the legs; a "
                    "pair whose quantities come back at prices further apart is carrying market risk")
    pair_min_returned_share: float = Field(
        0.6, ge=0, le=1,
        description="share of the pair's gross mutual volume in the episode that went out and came back in clean "
                    "round trips (leave flat, one way, back the other way to flat): a wash pair's volume is "
                    "returned volume; two independent traders meeting many times wander away from flat (their "
                    "mutual position is a random walk), leaving most of their volume in long unreturned excursions")
    pair_max_net_share: float = Field(
        0.25, ge=0, le=1,
        description="largest |bought - sold| / (bought + sold) between the two accounts over the episode: no "
                    "change in beneficial ownership means the pair ends about where it started; a quarter "
                    "allows one unreturned delivery in four, a counterparty building a position fails it")
    pair_min_mutual_share: float = Field(
        0.5, ge=0, le=1,
        description="least share of each account's trading in the symbol, from one gap before the episode to "
                    "one gap after it, that was with the other (by count or by volume, whichever is larger): "
                    "accounts acting in concert print their trades with each other, so the other is each one's "
                    "main counterparty, at least half its trading, while it lasts; a market maker meets a "
                    "client's clips as a small part of its flow with many accounts, so a liquidity taker meeting "
                    "one maker again and again is, on the maker's side, a minor client")


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


def _pair_trades(trades: pl.DataFrame, settings: WashTradingSettings) -> pl.DataFrame:
    """The trades between two distinct accounts, per unordered pair in time order, cut into clusters (time gaps)
    and round trips (excursions of the pair's mutual position away from flat and back), one row per trade.

    `position` is what account_a holds from its trades with account_b since the cluster began. A trade after
    which it is back within `quantity_tolerance` of flat (relative to the largest position the pair has had
    open in the cluster) ends a round trip; so does a trade that carries it through zero to the other side
    (an overshoot: that excursion is not a clean return). Clusters and excursions are numbered across the whole
    sorted frame, so later steps group by one integer key."""
    gap_us = settings.episode_gap_s * US_PER_S
    a_buys = pl.col(Trade.BUYER_ID) < pl.col(Trade.SELLER_ID)  # account_a is the smaller id
    new_pair = pl.any_horizontal([pl.col(c) != pl.col(c).shift(1) for c in PAIR]).fill_null(True)
    frame = (
        trades.filter(pl.col(Trade.BUYER_ID) != pl.col(Trade.SELLER_ID))
        .select(
            Trade.SYMBOL, Trade.TRADE_ID, Trade.TIMESTAMP, "ts_us", Trade.PRICE, Trade.QUANTITY,
            pl.min_horizontal(Trade.BUYER_ID, Trade.SELLER_ID).alias("account_a"),
            pl.max_horizontal(Trade.BUYER_ID, Trade.SELLER_ID).alias("account_b"),
            a_buys.alias("a_buys"),
        )
        .sort([*PAIR, "ts_us"], maintain_order=True)
        .with_columns((new_pair | (pl.col("ts_us").diff() > gap_us).fill_null(True)).alias("new_cluster"))
        .with_columns(pl.col("new_cluster").cum_sum().alias("cluster"))
        # a pair that met once has nothing to return: most pairs of a busy day, dropped before the window work
        .filter(pl.len().over("cluster") >= 2 * settings.pair_min_round_trips)
    )
    signed = pl.when(pl.col("a_buys")).then(pl.col(Trade.QUANTITY)).otherwise(-pl.col(Trade.QUANTITY))
    frame = frame.with_columns(signed.cum_sum().over("cluster").alias("position"))
    frame = frame.with_columns(
        pl.col("position").shift(1).over("cluster").fill_null(0.0).alias("previous_position"),
        pl.col("position").abs().cum_max().over("cluster").alias("largest_open"),
    )
    flat = pl.col("position").abs() <= settings.quantity_tolerance * pl.col("largest_open")
    previous_flat = (pl.col("previous_position").abs() <= settings.quantity_tolerance * pl.col("largest_open"))
    overshoot = ~flat & ~previous_flat & (pl.col("position") * pl.col("previous_position") < 0)
    frame = frame.with_columns(flat.alias("flat"), overshoot.alias("overshoot"))
    ends = pl.col("flat") | pl.col("overshoot")
    return frame.with_columns(
        (pl.col("new_cluster") | ends.shift(1).fill_null(True)).cum_sum().alias("excursion"),
        # the excursion starts from flat: the cluster's first, or after a clean return (not after an overshoot)
        (pl.col("new_cluster") | pl.col("flat").shift(1).fill_null(True)).alias("starts_flat"),
        (pl.col("new_cluster") | (pl.col("a_buys") != pl.col("a_buys").shift(1)).fill_null(True))
        .alias("turn"),
    )


def _round_trips(pair_trades: pl.DataFrame) -> pl.DataFrame:
    """One row per excursion: clean when it leaves flat, goes one way (in one or more trades), comes back the
    other way (in one or more trades) to flat, with the VWAPs of the way out and the way back."""
    out = pl.col("a_buys") == pl.col("a_buys").first()
    notional = pl.col(Trade.PRICE) * pl.col(Trade.QUANTITY)
    return (
        pair_trades.group_by("excursion")
        .agg(
            pl.col("cluster").first(),
            pl.col("starts_flat").first(),
            pl.col("flat").last().alias("ends_flat"),
            pl.col("turn").slice(1).sum().alias("turns"),  # direction changes after the first trade
            pl.col(Trade.QUANTITY).sum().alias("quantity"),
            (notional.filter(out).sum() / pl.col(Trade.QUANTITY).filter(out).sum()).alias("vwap_out"),
            (notional.filter(~out).sum() / pl.col(Trade.QUANTITY).filter(~out).sum()).alias("vwap_back"),
        )
        .with_columns(
            (pl.col("starts_flat") & pl.col("ends_flat") & (pl.col("turns") == 1)).alias("clean"),
            ((pl.col("vwap_back") - pl.col("vwap_out")).abs() / ((pl.col("vwap_back") + pl.col("vwap_out")) / 2)
             * BPS).alias("gap_bps"),
        )
    )


def _pair_clusters(trades: pl.DataFrame, settings: WashTradingSettings) -> pl.DataFrame:
    """Every cluster of a pair's mutual trades with the measures the thresholds apply to (unfiltered)."""
    pair_trades = _pair_trades(trades, settings)
    trips = _round_trips(pair_trades)
    clean = pl.col("clean")
    per_trip = trips.group_by("cluster").agg(
        clean.sum().alias("round_trips"),
        pl.col("quantity").filter(clean).sum().alias("returned_quantity"),
        ((pl.col("gap_bps") * pl.col("quantity")).filter(clean).sum()
         / pl.col("quantity").filter(clean).sum()).alias("mean_gap_bps"),
        pl.col("gap_bps").filter(clean).max().alias("max_gap_bps"),
    )
    signed = pl.when(pl.col("a_buys")).then(pl.col(Trade.QUANTITY)).otherwise(-pl.col(Trade.QUANTITY))
    clusters = pair_trades.group_by("cluster").agg(
        *(pl.col(c).first() for c in PAIR),
        pl.len().alias("trades"),
        pl.col(Trade.QUANTITY).sum().alias("gross"),
        signed.sum().abs().alias("net"),
        pl.col("position").abs().max().alias("largest_open"),
        (pl.col(Trade.PRICE) * pl.col(Trade.QUANTITY)).sum().alias("notional"),
        pl.col(Trade.PRICE).min().alias("price_min"), pl.col(Trade.PRICE).max().alias("price_max"),
        pl.col(Trade.TIMESTAMP).min().alias("start"), pl.col(Trade.TIMESTAMP).max().alias("end"),
        pl.col("ts_us").min().alias("start_us"), pl.col("ts_us").max().alias("end_us"),
        pl.col(Trade.TRADE_ID).alias("trade_ids"),  # in time order: the frame is sorted
    )
    return (
        clusters.join(per_trip, on="cluster")
        .with_columns(
            (pl.col("net") / pl.col("gross")).alias("net_share"),
            (pl.col("returned_quantity") / pl.col("gross")).alias("returned_share"),
            ((pl.col("price_max") - pl.col("price_min")) / (pl.col("notional") / pl.col("gross")) * BPS)
            .alias("price_range_bps"),
        )
    )


def _with_mutual_share(trades: pl.DataFrame, clusters: pl.DataFrame, settings: WashTradingSettings) -> pl.DataFrame:
    """Each cluster with `mutual_share`: for each of its two accounts, the share of all its trades in the symbol
    (by count or by volume, whichever is larger) from `episode_gap_s` before the cluster's first trade to
    `episode_gap_s` after its last that were trades with the other (in that window the pair itself traded only
    in this cluster: a trade of theirs would have joined it); the lesser of the two accounts' shares.

    Cumulative counts and volumes per (symbol, account) looked up at the window's edges with as-of joins: a
    binary search per account and cluster, whatever the accounts' activity."""
    gap_us = int(settings.episode_gap_s * US_PER_S)
    by = [Trade.SYMBOL, "account"]
    windows = pl.concat([
        clusters.select("cluster", Trade.SYMBOL, pl.col(side).alias("account"), "trades", "gross",
                        (pl.col("start_us") - gap_us).alias("lo"), (pl.col("end_us") + gap_us).alias("hi"))
        for side in ("account_a", "account_b")
    ])
    activity = (
        pl.concat([trades.select(Trade.SYMBOL, pl.col(side).alias("account"), "ts_us", Trade.QUANTITY)
                   for side in (Trade.BUYER_ID, Trade.SELLER_ID)])
        .join(windows.select(by).unique(), on=by, how="semi")  # only the candidates' accounts
        .sort("ts_us")
        .select(by + ["ts_us",
                      pl.int_range(1, pl.len() + 1).over(by).alias("count"),
                      pl.col(Trade.QUANTITY).cum_sum().over(by).alias("volume")])
    )
    at_hi = windows.sort("hi").join_asof(
        activity, left_on="hi", right_on="ts_us", by=by, strategy="backward",
        check_sortedness=False)  # both sides sorted on time as a whole, hence within every group
    before_lo = windows.sort("lo").join_asof(
        activity, left_on="lo", right_on="ts_us", by=by, strategy="backward", allow_exact_matches=False,
        check_sortedness=False)
    key = ["cluster", "account"]
    edges = at_hi.select(*key, "trades", "gross", "count", "volume").join(
        before_lo.select(*key, pl.col("count").fill_null(0).alias("count_lo"),
                         pl.col("volume").fill_null(0.0).alias("volume_lo")), on=key)
    share = pl.max_horizontal(pl.col("trades") / (pl.col("count") - pl.col("count_lo")),
                              pl.col("gross") / (pl.col("volume") - pl.col("volume_lo")))
    shares = edges.group_by("cluster").agg(share.clip(upper_bound=1.0).min().alias("mutual_share"))
    return clusters.join(shares, on="cluster", how="left")


def _pair_episodes(trades: pl.DataFrame, settings: WashTradingSettings) -> pl.DataFrame:
    clusters = _pair_clusters(trades, settings).filter(
        (pl.col("round_trips") >= settings.pair_min_round_trips)
        & (pl.col("returned_share") >= settings.pair_min_returned_share)
        & (pl.col("net_share") <= settings.pair_max_net_share)
        & (pl.col("mean_gap_bps") <= settings.price_tolerance_bps)
    )
    if clusters.height == 0:
        return clusters
    return _with_mutual_share(trades, clusters, settings).filter(
        pl.col("mutual_share") >= settings.pair_min_mutual_share)


def _pair_findings(trades: pl.DataFrame, settings: WashTradingSettings) -> list[dict]:
    episodes = _pair_episodes(trades, settings)
    rows = []
    for ep in episodes.iter_rows(named=True):  # one row per episode: few
        r, minutes = ep["round_trips"], (ep["end"] - ep["start"]).total_seconds() / 60
        sameness = 1 - ep["mean_gap_bps"] / (2 * settings.price_tolerance_bps) \
            if settings.price_tolerance_bps > 0 else 1.0
        score = ep["returned_share"] * (1 - ep["net_share"]) * sameness * r / (r + 1)
        metrics = {key: ep[key] for key in (
            "trades", "round_trips", "gross", "net", "net_share", "returned_share", "largest_open",
            "mean_gap_bps", "max_gap_bps", "price_range_bps", "mutual_share", "notional", "price_min", "price_max")}
        metrics |= {"duration_min": minutes, "pair_min_round_trips": settings.pair_min_round_trips,
                    "price_tolerance_bps": settings.price_tolerance_bps,
                    "pair_max_net_share": settings.pair_max_net_share,
                    "pair_min_returned_share": settings.pair_min_returned_share,
                    "pair_min_mutual_share": settings.pair_min_mutual_share,
                    "episode_gap_s": settings.episode_gap_s}
        a, b, symbol = ep["account_a"], ep["account_b"], ep[Trade.SYMBOL]
        explanation = (
            f"{a} and {b} traded {symbol} back and forth {ep['trades']} times in {describe_minutes(minutes)}: "
            f"{r} round trips in which what one delivered came back to it (threshold "
            f"{settings.pair_min_round_trips}), {ep['returned_share']:.0%} of their gross "
            f"{describe_number(ep['gross'])} returned, net {describe_number(ep['net'])} ({ep['net_share']:.1%}, "
            f"at most {settings.pair_max_net_share:.0%} allowed), each quantity coming back {ep['mean_gap_bps']:.1f} "
            f"bps on average from its price out (at most {settings.price_tolerance_bps:g}), and their trades with "
            f"each other at least {ep['mutual_share']:.0%} of each one's trading in {symbol} around them (by count "
            f"or volume, threshold {settings.pair_min_mutual_share:.0%}): no change in beneficial ownership")
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
