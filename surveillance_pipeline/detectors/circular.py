"""Circular trading: a ring of three or more accounts passing about the same quantity round, back to its origin.

The wash-trading definitions (CEA §4c(a), FINRA Rule 6140, MAR Annex I) cover trades between parties acting
in concert with no change in beneficial interest; a ring A -> B -> C (-> ...) -> A is the form that hides it
from a pair-wise check: every account sells as much as it buys, the position ends where it started, and the
tape shows volume. Two accounts trading back and forth are wash trading (detectors.wash), not a ring.

The cycle search is a chain of joins over the day's trades seen as hops seller -> buyer, per symbol:
a path of hops is extended by its last buyer's next sale of about the first hop's quantity (a forward as-of
join by symbol, seller and quantity bucket, the bucket and its two neighbours), made at most `max_hop_gap_s`
after the last hop and within `max_lap_s` of the first, with a quantity within `quantity_tolerance` of the
first hop's and a price within `price_tolerance_bps` of it. Each path has at most three candidates a hop,
however busy its accounts: no cross join of buys and sells, and no blow-up among accounts trading one round
size. A path whose next buyer is its first seller, after 3 to `max_ring_size` distinct accounts, is a *lap*.
Laps of the same ring (same account set, same symbol) less than `episode_gap_s` apart form one episode; it is
a finding when it has at least `min_laps` laps (distinct trades / ring size) and when the ring's trades are at
least `min_ring_flow_share` of all the quantity its members traded with each other (either way) meanwhile.

A busy market produces chains A -> B -> C -> A by coincidence: at different sizes or far apart in time (the
quantity and timing conditions), once (the lap count), or among accounts that trade with each other all the
time, both ways and in many sizes, so that the chance laps are a small part of their mutual flow (the flow
share: this is what keeps a hyperactive account and its counterparties quiet).

Score (0..1, probability-like, a product of pieces of evidence each in 0..1):
(n - 1) / n x (1 - lap quantity spread / (2 x quantity_tolerance)) x (1 - lap price spread / (2 x
price_tolerance_bps)) x ring_flow_share, where n is the episode's number of trades (as for wash pairs, every trade
after the first that carries the same quantity on, in order, is one more confirmation: two laps of a 3-ring give
5/6), the spreads are the largest (max - min) / mean within one lap, so sizes or prices at the edge of their
tolerance halve the score, and ring_flow_share is the share of the members' mutual trading that went round.
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
from surveillance_pipeline.detectors.wash import (
    BPS,
    US_PER_S,
    describe_minutes,
    describe_number,
)

# Hops of a path (list columns, one entry per hop, in cycle order).
HOP_COLUMNS = ("trade_ids", "sellers", "quantities", "prices", "times")


class CircularTradingSettings(DetectorSettings):
    """Thresholds of the circular-trading (ring) detector."""

    max_ring_size: int = Field(
        5, ge=3, le=8,
        description="most accounts in a ring searched for (3 is the smallest ring; two accounts are wash "
                    "trading): every extra member is one more party to trust and one more hop to time, so "
                    "rings are small; each extra size is one more join")
    max_hop_gap_s: float = Field(
        300.0, gt=0, le=86_400,
        description="longest wait, in seconds, between receiving the quantity and passing it on: a ring returns "
                    "the position without carrying market risk, so each member hands it on within minutes")
    max_lap_s: float = Field(
        1_800.0, gt=0, le=86_400,
        description="longest time, in seconds, for the quantity to go once round the ring and back to its "
                    "origin: a few prompt hops take minutes; 30 min leaves room for a slow ring while chance "
                    "chains of equal sizes over hours stay out")
    quantity_tolerance: float = Field(
        0.02, ge=0, lt=1,
        description="largest relative difference |q - q1| / q1 between any hop's quantity and the first hop's: "
                    "the ring passes the same position on, less fees taken in the asset (~0.1 % a hop) and lot "
                    "rounding; 2 % covers that while independent orders' sizes rarely agree so closely")
    price_tolerance_bps: float = Field(
        25.0, ge=0, le=1_000,
        description="largest difference, in basis points of the first hop's price, of any hop's price: members "
                    "pass the asset at about one price so that nobody gains or loses; 25 bps allows for a "
                    "market that drifts during a lap of several minutes")
    min_laps: float = Field(
        2.0, ge=1,
        description="laps (distinct trades of the episode / ring size) needed to report: one lap of similar "
                    "sizes happens by chance where busy accounts trade many small or round-number sizes; a ring "
                    "that puts volume on the tape goes round again, and the same accounts meeting in the same "
                    "order twice within the gap is no coincidence")
    min_ring_flow_share: float = Field(
        0.6, ge=0, le=1,
        description="share of all the quantity the members traded with each other (either way) during the "
                    "episode that went round the ring: colluding members trade with each other to pass the asset "
                    "on; busy accounts that meet through the book trade with each other both ways and in many "
                    "sizes, a chance lap being a small part of it")
    episode_gap_s: float = Field(
        900.0, gt=0, le=86_400,
        description="seconds between one lap's end and the next lap's start of the same ring beyond which they "
                    "are reported as separate episodes")


def detect_circular_trading(inputs: DetectionInputs, settings: CircularTradingSettings) -> pl.DataFrame:
    """Rings of 3+ accounts passing the same quantity round within a lap window, one finding per episode."""
    if not settings.enabled or not inputs.has_accounts:
        return empty_findings()
    hops = _hops(inputs.trades, settings)
    laps = _laps(hops, settings)
    if laps.height == 0:
        return empty_findings()
    episodes = _with_member_flow(inputs.trades, _episodes(laps, settings), settings)
    return findings_frame(_findings(episodes, settings)).sort(Finding.WINDOW_START, Finding.SYMBOL)


def _hops(trades: pl.DataFrame, settings: CircularTradingSettings) -> pl.DataFrame:
    """Trades between two known, distinct accounts as seller -> buyer hops, with their quantity bucket."""
    # bucket width: |q - q1| <= tolerance x q1 puts ln q within one width of ln q1, so in a neighbouring bucket
    log_step = -math.log1p(-settings.quantity_tolerance) if settings.quantity_tolerance > 0 else 1e-12
    return (
        trades.filter(pl.col(Trade.BUYER_ID).is_not_null() & pl.col(Trade.SELLER_ID).is_not_null()
                      & (pl.col(Trade.BUYER_ID) != pl.col(Trade.SELLER_ID)) & (pl.col(Trade.QUANTITY) > 0))
        .select(
            Trade.SYMBOL, Trade.TRADE_ID, Trade.SELLER_ID, Trade.BUYER_ID, Trade.QUANTITY, Trade.PRICE,
            pl.col(Trade.TIMESTAMP).dt.epoch("us").alias("ts_us"),
        )
        .with_columns((pl.col(Trade.QUANTITY).log() / log_step).floor().cast(pl.Int64).alias("qty_bucket"))
        .sort("ts_us", maintain_order=True)
    )


def _next_hops(paths: pl.DataFrame, hops: pl.DataFrame, settings: CircularTradingSettings) -> pl.DataFrame:
    """Each path with the next sale of its last buyer in the first hop's quantity bucket and either neighbour
    (at most three candidates a path: a forward as-of join, so a busy account never multiplies the paths)."""
    next_sales = hops.select(
        Trade.SYMBOL, pl.col(Trade.SELLER_ID).alias("last_buyer"), pl.col("qty_bucket").alias("lookup_bucket"),
        pl.col("ts_us").alias("next_ts"), pl.col(Trade.TRADE_ID).alias("next_trade_id"),
        pl.col(Trade.BUYER_ID).alias("next_buyer"), pl.col(Trade.QUANTITY).alias("next_qty"),
        pl.col(Trade.PRICE).alias("next_price"),
    )
    lookups = (
        paths.with_columns((pl.col("first_qty_bucket") + pl.lit([-1, 0, 1])).alias("lookup_bucket"))
        .explode("lookup_bucket")
        .sort("last_ts", maintain_order=True)
    )
    return lookups.join_asof(
        next_sales, left_on="last_ts", right_on="next_ts", by=[Trade.SYMBOL, "last_buyer", "lookup_bucket"],
        strategy="forward", tolerance=int(settings.max_hop_gap_s * US_PER_S),
        check_sortedness=False,  # both sides sorted on time as a whole, hence within every group
    ).filter(pl.col("next_trade_id").is_not_null())


def _laps(hops: pl.DataFrame, settings: CircularTradingSettings) -> pl.DataFrame:
    """Closed paths of 3..max_ring_size distinct accounts, one row per lap, hops in cycle order.

    A path goes on with its last buyer's next sale of about the first hop's quantity: in a ring each member
    passes on what it received with its next sale of that size."""
    paths = hops.select(
        Trade.SYMBOL,
        pl.col(Trade.SELLER_ID).alias("origin"), pl.col(Trade.BUYER_ID).alias("last_buyer"),
        pl.col(Trade.QUANTITY).alias("first_qty"), pl.col(Trade.PRICE).alias("first_price"),
        pl.col("ts_us").alias("first_ts"), pl.col("ts_us").alias("last_ts"),
        pl.col("qty_bucket").alias("first_qty_bucket"),
        pl.concat_list(Trade.SELLER_ID, Trade.BUYER_ID).alias("accounts"),
        pl.concat_list(Trade.TRADE_ID).alias("trade_ids"), pl.concat_list(Trade.SELLER_ID).alias("sellers"),
        pl.concat_list(Trade.QUANTITY).alias("quantities"), pl.concat_list(Trade.PRICE).alias("prices"),
        pl.concat_list("ts_us").alias("times"),
    )
    lap_us = settings.max_lap_s * US_PER_S
    laps = []
    for hop_count in range(2, settings.max_ring_size + 1):  # a loop over ring sizes, not over rows
        extended = (
            _next_hops(paths, hops, settings)
            .filter(
                (pl.col("next_ts") - pl.col("first_ts") <= lap_us)
                & ((pl.col("next_qty") - pl.col("first_qty")).abs()
                   <= settings.quantity_tolerance * pl.col("first_qty"))
                & ((pl.col("next_price") - pl.col("first_price")).abs()
                   <= settings.price_tolerance_bps / BPS * pl.col("first_price"))
            )
            .with_columns(
                pl.col("accounts").list.contains(pl.col("next_buyer")).alias("visited"),
                pl.col("accounts").list.concat(pl.concat_list("next_buyer")),
                pl.col("trade_ids").list.concat(pl.concat_list("next_trade_id")),
                pl.col("sellers").list.concat(pl.concat_list("last_buyer")),
                pl.col("quantities").list.concat(pl.concat_list("next_qty")),
                pl.col("prices").list.concat(pl.concat_list("next_price")),
                pl.col("times").list.concat(pl.concat_list("next_ts")),
            )
        )
        closes = pl.col("next_buyer") == pl.col("origin")
        if hop_count >= 3:
            laps.append(extended.filter(closes).select(Trade.SYMBOL, *HOP_COLUMNS))
        if hop_count == settings.max_ring_size:
            break
        # a path goes on only through accounts it has not visited (a return to the origin is a lap, above)
        paths = extended.filter(~pl.col("visited")).select(
            Trade.SYMBOL, "origin", pl.col("next_buyer").alias("last_buyer"), "first_qty", "first_price",
            "first_ts", pl.col("next_ts").alias("last_ts"), "first_qty_bucket", "accounts", *HOP_COLUMNS,
        )
    return pl.concat(laps)


def _episodes(laps: pl.DataFrame, settings: CircularTradingSettings) -> pl.DataFrame:
    """Laps of one ring (symbol x account set) grouped in time; their distinct trades aggregated."""
    ring = [Trade.SYMBOL, "ring"]
    gap_us = settings.episode_gap_s * US_PER_S
    qty, price = pl.col("quantities"), pl.col("prices")
    laps = (
        laps.with_columns(
            pl.col("sellers").list.sort().list.join(",").alias("ring"),
            pl.col("times").list.first().alias("lap_start"), pl.col("times").list.last().alias("lap_end"),
            ((qty.list.max() - qty.list.min()) / qty.list.mean()).alias("lap_qty_spread"),
            ((price.list.max() - price.list.min()) / price.list.mean() * BPS).alias("lap_price_spread_bps"),
        )
        .sort([*ring, "lap_start"])
        .with_columns(
            (pl.col("lap_start") - pl.col("lap_end").cum_max().shift(1).over(ring) > gap_us)
            .fill_null(False).cum_sum().over(ring).alias("episode"))
    )
    episode = [*ring, "episode"]
    per_lap = laps.group_by(episode).agg(
        pl.col("sellers").first().alias("cycle"),  # in the order of the first lap: the sentence's direction
        pl.col("lap_qty_spread").max(), pl.col("lap_price_spread_bps").max(),
    )
    trades = (
        laps.select(*episode, *HOP_COLUMNS).explode(list(HOP_COLUMNS))
        .unique([*episode, "trade_ids"])
    )
    return (
        trades.group_by(episode)
        .agg(
            pl.col("trade_ids").sort_by("times").alias("trade_ids"),
            pl.len().alias("trades"),
            pl.col("sellers").n_unique().alias("ring_size"),
            qty.sum().alias("volume"), qty.min().alias("qty_min"), qty.max().alias("qty_max"),
            price.min().alias("price_min"), price.max().alias("price_max"),
            pl.col("times").min().alias("start_us"), pl.col("times").max().alias("end_us"),
        )
        .join(per_lap, on=episode)
        .with_columns((pl.col("trades") / pl.col("ring_size")).alias("laps"))
        .filter(pl.col("laps") >= settings.min_laps)
    )


def _member_flow(trades: pl.DataFrame, episodes: pl.DataFrame) -> pl.DataFrame:
    """Per episode, the quantity traded between any two ring members (either way) during its window.

    Cumulative quantity per (symbol, seller, buyer) looked up at the window's edges with as-of joins:
    a binary search per member pair, whatever the accounts' activity.
    """
    flow_key = [Trade.SYMBOL, Trade.SELLER_ID, Trade.BUYER_ID]
    flows = (
        trades.filter(pl.col(Trade.BUYER_ID).is_not_null() & pl.col(Trade.SELLER_ID).is_not_null())
        .select(*flow_key, pl.col(Trade.TIMESTAMP).dt.epoch("us").alias("ts_us"), Trade.QUANTITY)
        .sort("ts_us")
        .with_columns(pl.col(Trade.QUANTITY).cum_sum().over(flow_key).alias("cum_qty"))
    )
    members = episodes.select(
        Trade.SYMBOL, "ring", "episode", "start_us", "end_us",
        pl.col("cycle").alias(Trade.SELLER_ID), pl.col("cycle").alias(Trade.BUYER_ID),
    ).explode(Trade.SELLER_ID).explode(Trade.BUYER_ID).filter(pl.col(Trade.SELLER_ID) != pl.col(Trade.BUYER_ID))
    at_end = members.sort("end_us").join_asof(
        flows, left_on="end_us", right_on="ts_us", by=flow_key, strategy="backward",
        check_sortedness=False)  # both sides sorted on time as a whole, hence within every group
    before_start = members.sort("start_us").join_asof(
        flows, left_on="start_us", right_on="ts_us", by=flow_key, strategy="backward", allow_exact_matches=False,
        check_sortedness=False)
    key = [Trade.SYMBOL, "ring", "episode", Trade.SELLER_ID, Trade.BUYER_ID]
    return (
        at_end.select(*key, pl.col("cum_qty").fill_null(0.0).alias("cum_end"))
        .join(before_start.select(*key, pl.col("cum_qty").fill_null(0.0).alias("cum_start")), on=key)
        .group_by(Trade.SYMBOL, "ring", "episode")
        .agg((pl.col("cum_end") - pl.col("cum_start")).sum().alias("member_flow"))
    )


def _with_member_flow(trades: pl.DataFrame, episodes: pl.DataFrame,
                      settings: CircularTradingSettings) -> pl.DataFrame:
    episode = [Trade.SYMBOL, "ring", "episode"]
    return (
        episodes.join(_member_flow(trades, episodes), on=episode, how="left")
        .with_columns((pl.col("volume") / pl.col("member_flow")).clip(upper_bound=1.0).alias("ring_flow_share"))
        .filter(pl.col("ring_flow_share") >= settings.min_ring_flow_share)
        .with_columns(
            pl.from_epoch("start_us", time_unit="us").dt.replace_time_zone("UTC").alias("start"),
            pl.from_epoch("end_us", time_unit="us").dt.replace_time_zone("UTC").alias("end"),
        )
    )


def _findings(episodes: pl.DataFrame, settings: CircularTradingSettings) -> list[dict]:
    rows = []
    for ep in episodes.iter_rows(named=True):  # one row per episode: few
        laps, minutes = ep["laps"], (ep["end_us"] - ep["start_us"]) / US_PER_S / 60
        qty_fit = 1 - ep["lap_qty_spread"] / (2 * settings.quantity_tolerance) if settings.quantity_tolerance else 1.0
        price_fit = 1 - ep["lap_price_spread_bps"] / (2 * settings.price_tolerance_bps) \
            if settings.price_tolerance_bps else 1.0
        n = ep["trades"]
        score = max(0.0, min(1.0, (n - 1) / n * qty_fit * price_fit * ep["ring_flow_share"]))
        cycle = " -> ".join([*ep["cycle"], ep["cycle"][0]])
        metrics = {key: ep[key] for key in (
            "ring_size", "laps", "trades", "volume", "qty_min", "qty_max", "lap_qty_spread", "lap_price_spread_bps",
            "price_min", "price_max", "member_flow", "ring_flow_share")}
        metrics |= {"duration_min": minutes, "quantity_tolerance": settings.quantity_tolerance,
                    "price_tolerance_bps": settings.price_tolerance_bps, "max_hop_gap_s": settings.max_hop_gap_s,
                    "max_lap_s": settings.max_lap_s, "min_laps": settings.min_laps,
                    "min_ring_flow_share": settings.min_ring_flow_share}
        one_size = ep["qty_max"] - ep["qty_min"] <= settings.quantity_tolerance * ep["qty_min"]
        sizes = (f"about {describe_number(ep['qty_min'])}" if one_size
                 else f"{describe_number(ep['qty_min'])}-{describe_number(ep['qty_max'])}")
        explanation = (
            f"{ep['ring_size']} accounts passed {ep[Trade.SYMBOL]} round the ring {cycle} {laps:.3g} times in "
            f"{describe_minutes(minutes)} ({ep['trades']} trades of {sizes}, each lap's sizes within "
            f"{ep['lap_qty_spread']:.2%} and prices within {ep['lap_price_spread_bps']:.1f} bps, tolerances "
            f"{settings.quantity_tolerance:.0%} and {settings.price_tolerance_bps:g} bps, every hop within "
            f"{describe_minutes(settings.max_hop_gap_s / 60)}; {ep['ring_flow_share']:.0%} of what the members traded "
            f"with each other went round the ring): the asset kept returning to its origin, no change in "
            f"beneficial ownership")
        rows.append({
            Finding.PATTERN: Pattern.CIRCULAR_TRADING.value, Finding.SYMBOL: ep[Trade.SYMBOL],
            Finding.USER_IDS: sorted(set(ep["cycle"])), Finding.WINDOW_START: ep["start"],
            Finding.WINDOW_END: ep["end"], Finding.SCORE: score, Finding.EXPLANATION: explanation,
            Finding.EVIDENCE: [f"trade:{t}" for t in ep["trade_ids"]], Finding.METRICS: metrics,
        })
    return rows
