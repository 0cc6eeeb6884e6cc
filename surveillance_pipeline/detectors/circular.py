"""Circular trading: a ring of three or more accounts passing about the same quantity round, back to its origin.

The wash-trading definitions (CEA §4c(a), FINRA Rule 6140, MAR Annex I) cover trades between parties acting
in concert with no change in beneficial interest; a ring A -> B -> C (-> ...) -> A is the form that hides it
from a pair-wise check: every account sells as much as it buys, the position ends where it started, and the
tape shows volume. Two accounts trading back and forth are wash trading (detectors.wash), not a ring.

The day's trades between two accounts are *hops* seller -> buyer: every trade, and also every run of trades of
one seller to one buyer less than `hop_piece_gap_s` apart with no sale of the buyer in between (a quantity
handed on in pieces: the hop's quantity is their sum, its price their VWAP). The cycle search is a chain of
joins over the hops, per symbol: a path is extended by its last buyer's next hop out of about the first hop's
quantity (a forward as-of join by symbol, seller and quantity bucket, the bucket and its two neighbours), made
at most `max_hop_gap_s` after the last hop and within `max_lap_s` of the first, with a quantity within
`quantity_tolerance` of the first hop's and a price within `price_tolerance_bps` of it. Each path has at most
three candidates a hop, however busy its accounts: no cross join of buys and sells, and no blow-up among
accounts trading one round size. A path whose next buyer is its first seller, after 3 to `max_ring_size`
distinct accounts, is a *lap*. Laps of the same ring (same account set, same symbol, either direction round)
less than `episode_gap_s` apart form one episode; it is a finding when it has at least `min_laps` laps
(distinct hops / ring size, a single trade that is also a piece of a hop the episode uses counting only
through that hop) and when the ring's trades are at least `min_ring_flow_share` of all the quantity its
members traded with each other (either way) during the episode and one `episode_gap_s` either side of it.

A busy market produces chains A -> B -> C -> A by coincidence: at different sizes or far apart in time (the
quantity and timing conditions), once (the lap count), or among accounts that trade with each other all the
time, both ways and in many sizes, so that the chance laps are a small part of their mutual flow (the flow
share: this is what keeps a hyperactive account and its counterparties quiet).

Score (0..1, probability-like, a product of pieces of evidence each in 0..1):
(n - 1) / n x (1 - lap quantity spread / (2 x quantity_tolerance)) x (1 - lap price spread / (2 x
price_tolerance_bps)) x ring_flow_share, where n is the episode's number of hops (as for wash pairs, every hop
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
HOP_COLUMNS = ("hop_ids", "sellers", "quantities", "prices", "times")


class CircularTradingSettings(DetectorSettings):
    """Thresholds of the circular-trading (ring) detector."""

    max_ring_size: int = Field(
        6, ge=3, le=8,
        description="most accounts in a ring searched for (3 is the smallest ring; two accounts are wash "
                    "trading). The definition allows any ring of three or more; what bounds the search is cost: "
                    "each extra size is one more as-of join over the paths still open (at most three candidates "
                    "a hop, and few paths survive several hops of one size), a bounded step each. Each extra "
                    "member is also one more party to the scheme and one more hop to fit in the lap window, so "
                    "large rings are rare; 6 is searched by default, 8 is the most allowed")
    max_hop_gap_s: float = Field(
        600.0, gt=0, le=86_400,
        description="longest wait, in seconds, between receiving the quantity and passing it on (from the start "
                    "of one hop to the start of the next): while it waits the member holds the position, so a "
                    "member that sits on it for long is carrying a position of its own rather than handing one "
                    "on; 10 min lets a member wait for a quiet moment or its partner's order, and keeps one lap "
                    "of the largest ring searched (6 hops) within `max_lap_s`")
    max_lap_s: float = Field(
        3_600.0, gt=0, le=86_400,
        description="longest time, in seconds, for the quantity to go once round the ring and back to its "
                    "origin: one hop gap per member of the largest ring searched (6 x 10 min); chance chains of "
                    "equal sizes over hours stay out")
    quantity_tolerance: float = Field(
        0.02, ge=0, lt=1,
        description="largest relative difference |q - q1| / q1 between any hop's quantity and the first hop's: "
                    "the ring passes the same position on, less fees taken in the asset (~0.1 % a hop) and lot "
                    "rounding; 2 % covers that while independent orders' sizes rarely agree so closely")
    hop_piece_gap_s: float = Field(
        60.0, ge=0, le=3_600,
        description="seconds between two trades of the same seller to the same buyer within which they can be "
                    "one hop handed on in pieces (an order filled in several trades, or sliced): its quantity "
                    "is the pieces' sum and its price their VWAP. Each trade also stays a hop of its own, so a "
                    "ring going round faster than this is still followed trade by trade")
    price_tolerance_bps: float = Field(
        50.0, ge=0, le=1_000,
        description="largest difference, in basis points of the first hop's price, of any hop's price (a hop "
                    "in pieces: its VWAP): members pass the asset at the market's price of the moment so that "
                    "nobody gains or loses; within a lap of up to an hour the market drifts some tens of basis "
                    "points and each hop may sit anywhere in the spread, while 0.5 % of the notional changing "
                    "hands at a hop would be a real transfer of value between the members")
    min_laps: float = Field(
        2.0, ge=1,
        description="laps (distinct hops of the episode / ring size) needed to report: one lap of similar "
                    "sizes happens by chance where busy accounts trade many small or round-number sizes; a ring "
                    "that puts volume on the tape goes round again, and the same accounts meeting in the same "
                    "order twice within the gap is no coincidence")
    min_ring_flow_share: float = Field(
        0.6, ge=0, le=1,
        description="share of all the quantity the members traded with each other (either way), during the "
                    "episode and one `episode_gap_s` either side of it, that went round the ring: colluding "
                    "members trade with each other to pass the asset on; busy accounts that meet through the "
                    "book trade with each other all day, both ways and in many sizes, a chance lap being a small "
                    "part of it")
    episode_gap_s: float = Field(
        3_600.0, gt=0, le=86_400,
        description="seconds between one lap's end and the next lap's start of the same ring beyond which they "
                    "are reported as separate episodes. Between laps the asset is back with its origin and no "
                    "member holds anything, so the definition sets no clock; an hour keeps a ring that pauses "
                    "between laps (or waits for a quiet market) one scheme, and reports the same accounts "
                    "starting again hours later as a new episode")


def detect_circular_trading(inputs: DetectionInputs, settings: CircularTradingSettings) -> pl.DataFrame:
    """Rings of 3+ accounts passing the same quantity round within a lap window, one finding per episode."""
    if not settings.enabled or not inputs.has_accounts:
        return empty_findings()
    hops = _hops(inputs.trades, settings)
    laps = _laps(hops, settings)
    if laps.height == 0:
        return empty_findings()
    episodes = _with_member_flow(inputs.trades, _episodes(laps, hops, settings), settings)
    return findings_frame(_findings(episodes, settings)).sort(Finding.WINDOW_START, Finding.SYMBOL)


def _hops(trades: pl.DataFrame, settings: CircularTradingSettings) -> pl.DataFrame:
    """Trades between two known, distinct accounts as seller -> buyer hops, each trade one hop, plus one hop
    for every run of two or more trades of the same seller to the same buyer, each less than `hop_piece_gap_s`
    after the one before and with no sale of the buyer in between (a quantity handed on in pieces, received
    in full before the receiver passes anything on); with their quantity bucket, sorted by start time.

    `hop_id` numbers the hops (trades first, then runs); `trade_ids` and `trade_times` list a hop's trades."""
    # bucket width: |q - q1| <= tolerance x q1 puts ln q within one width of ln q1, so in a neighbouring bucket
    log_step = -math.log1p(-settings.quantity_tolerance) if settings.quantity_tolerance > 0 else 1e-12
    pair = [Trade.SYMBOL, Trade.SELLER_ID, Trade.BUYER_ID]
    single = (
        trades.filter(pl.col(Trade.BUYER_ID).is_not_null() & pl.col(Trade.SELLER_ID).is_not_null()
                      & (pl.col(Trade.BUYER_ID) != pl.col(Trade.SELLER_ID)) & (pl.col(Trade.QUANTITY) > 0))
        .select(
            *pair, Trade.QUANTITY, Trade.PRICE, pl.col(Trade.TIMESTAMP).dt.epoch("us").alias("ts_us"),
            pl.concat_list(Trade.TRADE_ID).alias("trade_ids"),
        )
        .with_columns(pl.concat_list("ts_us").alias("trade_times"))
        .sort("ts_us", maintain_order=True)
    )
    # candidate pieces: trades of a seller to a buyer less than the piece gap after (or before) another of
    # theirs, found on a hash of the pair (a collision only makes a candidate that the exact key then rejects)
    gap_us = settings.hop_piece_gap_s * US_PER_S
    key = pl.struct(pair).hash()
    close = (
        single.select(key.alias("key"), "ts_us", pl.int_range(pl.len()).alias("row"))
        .sort("key", "ts_us")
        .with_columns(((pl.col("key") == pl.col("key").shift(1)) & (pl.col("ts_us").diff() <= gap_us))
                      .fill_null(False).alias("joined"))
        .filter(pl.col("joined") | pl.col("joined").shift(-1).fill_null(False))
    )
    pieces = single.with_row_index("row").join(close.select(pl.col("row").cast(pl.UInt32)), on="row", how="semi")
    # the buyer's latest sale (to anyone) before each piece: a sale since the previous piece ends the run
    pieces = pieces.join_asof(
        single.select(Trade.SYMBOL, pl.col(Trade.SELLER_ID).alias(Trade.BUYER_ID), pl.col("ts_us").alias("sold_ts")),
        left_on="ts_us", right_on="sold_ts", by=[Trade.SYMBOL, Trade.BUYER_ID], strategy="backward",
        allow_exact_matches=False, check_sortedness=False)  # both sorted on time as a whole
    new_run = (pl.any_horizontal([pl.col(c) != pl.col(c).shift(1) for c in pair])
               | (pl.col("ts_us").diff() > gap_us)).fill_null(True) \
        | (pl.col("sold_ts") > pl.col("ts_us").shift(1)).fill_null(False)
    runs = (
        pieces.sort([*pair, "ts_us"], maintain_order=True)
        .with_columns(new_run.cum_sum().alias("run"))
        .filter(pl.len().over("run") >= 2)
        .group_by("run", maintain_order=True)
        .agg(
            *(pl.col(c).first() for c in pair),
            pl.col(Trade.QUANTITY).sum(),
            ((pl.col(Trade.PRICE) * pl.col(Trade.QUANTITY)).sum() / pl.col(Trade.QUANTITY).sum()).alias(Trade.PRICE),
            pl.col("ts_us").min(),
            *(pl.col(c).list.explode(keep_nulls=False, empty_as_null=False) for c in ("trade_ids", "trade_times")),
        )
        .drop("run")
    )
    return (
        pl.concat([single, runs])
        .with_row_index("hop_id")
        .with_columns((pl.col(Trade.QUANTITY).log() / log_step).floor().cast(pl.Int64).alias("qty_bucket"))
        .sort("ts_us", maintain_order=True)
    )


def _next_hops(paths: pl.DataFrame, hops: pl.DataFrame, settings: CircularTradingSettings) -> pl.DataFrame:
    """Each path with the next hop out of its last buyer in the first hop's quantity bucket and either neighbour
    (at most three candidates a path: a forward as-of join, so a busy account never multiplies the paths)."""
    next_sales = hops.select(
        Trade.SYMBOL, pl.col(Trade.SELLER_ID).alias("last_buyer"), pl.col("qty_bucket").alias("lookup_bucket"),
        pl.col("ts_us").alias("next_ts"), pl.col("hop_id").alias("next_hop_id"),
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
    ).filter(pl.col("next_hop_id").is_not_null())


def _laps(hops: pl.DataFrame, settings: CircularTradingSettings) -> pl.DataFrame:
    """Closed paths of 3..max_ring_size distinct accounts, one row per lap, hops in cycle order.

    A path goes on with its last buyer's next hop out of about the first hop's quantity: in a ring each member
    passes on what it received with its next sale (or run of sales) of that size. A path carries its hops and
    the accounts it went through as plain columns (hop_1, buyer_1, ...); the few laps get their lists at the
    end."""
    paths = hops.select(
        Trade.SYMBOL,
        pl.col(Trade.SELLER_ID).alias("origin"), pl.col(Trade.BUYER_ID).alias("last_buyer"),
        pl.col(Trade.QUANTITY).alias("first_qty"), pl.col(Trade.PRICE).alias("first_price"),
        pl.col("ts_us").alias("first_ts"), pl.col("ts_us").alias("last_ts"),
        pl.col("qty_bucket").alias("first_qty_bucket"),
        pl.col("hop_id").alias("hop_1"), pl.col(Trade.BUYER_ID).alias("buyer_1"),
    )
    lap_us = settings.max_lap_s * US_PER_S
    laps = []
    for n in range(2, settings.max_ring_size + 1):  # a loop over ring sizes, not over rows
        extended = (
            _next_hops(paths, hops, settings)
            .filter(
                (pl.col("next_ts") - pl.col("first_ts") <= lap_us)
                & ((pl.col("next_qty") - pl.col("first_qty")).abs()
                   <= settings.quantity_tolerance * pl.col("first_qty"))
                & ((pl.col("next_price") - pl.col("first_price")).abs()
                   <= settings.price_tolerance_bps / BPS * pl.col("first_price"))
            )
            .rename({"next_hop_id": f"hop_{n}"})
        )
        closes = pl.col("next_buyer") == pl.col("origin")
        hop_columns = [f"hop_{i}" for i in range(1, n + 1)]
        if n >= 3:
            laps.append(extended.filter(closes).select(Trade.SYMBOL, pl.concat_list(hop_columns).alias("hop_ids")))
        if n == settings.max_ring_size:
            break
        # a path goes on only through accounts it has not visited (a return to the origin is a lap, above)
        visited = closes | pl.any_horizontal([pl.col(f"buyer_{i}") == pl.col("next_buyer") for i in range(1, n)])
        paths = extended.filter(~visited).select(
            Trade.SYMBOL, "origin", pl.col("next_buyer").alias("last_buyer"), "first_qty", "first_price",
            "first_ts", pl.col("next_ts").alias("last_ts"), "first_qty_bucket", *hop_columns,
            *(f"buyer_{i}" for i in range(1, n)), pl.col("next_buyer").alias(f"buyer_{n}"),
        )
    hop = hops.select(pl.col("hop_id").alias("hop_ids"), pl.col(Trade.SELLER_ID).alias("sellers"),
                      pl.col(Trade.QUANTITY).alias("quantities"), pl.col(Trade.PRICE).alias("prices"),
                      pl.col("ts_us").alias("times"))
    return (
        pl.concat(laps).with_row_index("lap")
        .explode("hop_ids")
        .with_columns(pl.int_range(pl.len()).over("lap").alias("position"))
        .join(hop, on="hop_ids", how="left")
        .sort("lap", "position")
        .group_by("lap", maintain_order=True)
        .agg(pl.col(Trade.SYMBOL).first(), *(pl.col(c) for c in HOP_COLUMNS))
        .drop("lap")
    )


def _episodes(laps: pl.DataFrame, hops: pl.DataFrame, settings: CircularTradingSettings) -> pl.DataFrame:
    """Laps of one ring (symbol x account set) grouped in time; their distinct hops and trades aggregated.

    The hops of an episode are counted once each; a single trade that is also part of a hop in pieces the
    episode uses counts only through that hop, so `laps` = distinct hops / ring size whichever way it was
    found."""
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
    used = (
        laps.select(*episode, "hop_ids").explode("hop_ids").unique()
        .join(hops.select(pl.col("hop_id").alias("hop_ids"), Trade.SELLER_ID, Trade.QUANTITY, Trade.PRICE,
                          "trade_ids", "trade_times"), on="hop_ids")
    )
    # a single trade whose trade is also inside a multi-trade hop of the same episode is that hop, counted once
    covering = used.explode("trade_ids").group_by([*episode, "trade_ids"]).agg(pl.len().alias("cover"))
    redundant = (
        used.filter(pl.col("trade_ids").list.len() == 1)
        .with_columns(pl.col("trade_ids").list.first().alias("trade_id"))
        .join(covering.filter(pl.col("cover") > 1).select(*episode, pl.col("trade_ids").alias("trade_id")),
              on=[*episode, "trade_id"], how="semi")
        .select(*episode, "hop_ids")
    )
    used = used.join(redundant, on=[*episode, "hop_ids"], how="anti")
    trades = used.explode("trade_ids", "trade_times").unique([*episode, "trade_ids"])
    return (
        used.group_by(episode)
        .agg(
            pl.len().alias("hops"),
            pl.col(Trade.SELLER_ID).n_unique().alias("ring_size"),
            pl.col(Trade.QUANTITY).sum().alias("volume"),
            pl.col(Trade.QUANTITY).min().alias("qty_min"), pl.col(Trade.QUANTITY).max().alias("qty_max"),
            pl.col(Trade.PRICE).min().alias("price_min"), pl.col(Trade.PRICE).max().alias("price_max"),
        )
        .join(trades.group_by(episode).agg(
            pl.col("trade_ids").sort_by("trade_times").alias("trade_ids"), pl.len().alias("trades"),
            pl.col("trade_times").min().alias("start_us"), pl.col("trade_times").max().alias("end_us"),
        ), on=episode)
        .join(per_lap, on=episode)
        .with_columns((pl.col("hops") / pl.col("ring_size")).alias("laps"))
        .filter(pl.col("laps") >= settings.min_laps)
    )


def _member_flow(trades: pl.DataFrame, episodes: pl.DataFrame, margin_s: float) -> pl.DataFrame:
    """Per episode, the quantity traded between any two ring members (either way) from `margin_s` before its
    first trade to `margin_s` after its last.

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
    margin_us = int(margin_s * US_PER_S)
    members = episodes.select(
        Trade.SYMBOL, "ring", "episode",
        (pl.col("start_us") - margin_us).alias("start_us"), (pl.col("end_us") + margin_us).alias("end_us"),
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
        episodes.join(_member_flow(trades, episodes, settings.episode_gap_s), on=episode, how="left")
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
        n = ep["hops"]
        score = max(0.0, min(1.0, (n - 1) / n * qty_fit * price_fit * ep["ring_flow_share"]))
        cycle = " -> ".join([*ep["cycle"], ep["cycle"][0]])
        metrics = {key: ep[key] for key in (
            "ring_size", "laps", "hops", "trades", "volume", "qty_min", "qty_max", "lap_qty_spread",
            "lap_price_spread_bps", "price_min", "price_max", "member_flow", "ring_flow_share")}
        metrics |= {"duration_min": minutes, "quantity_tolerance": settings.quantity_tolerance,
                    "price_tolerance_bps": settings.price_tolerance_bps, "max_hop_gap_s": settings.max_hop_gap_s,
                    "max_lap_s": settings.max_lap_s, "min_laps": settings.min_laps,
                    "min_ring_flow_share": settings.min_ring_flow_share,
                    "hop_piece_gap_s": settings.hop_piece_gap_s, "episode_gap_s": settings.episode_gap_s}
        one_size = ep["qty_max"] - ep["qty_min"] <= settings.quantity_tolerance * ep["qty_min"]
        sizes = (f"about {describe_number(ep['qty_min'])}" if one_size
                 else f"{describe_number(ep['qty_min'])}-{describe_number(ep['qty_max'])}")
        explanation = (
            f"{ep['ring_size']} accounts passed {ep[Trade.SYMBOL]} round the ring {cycle} {laps:.3g} times in "
            f"{describe_minutes(minutes)} ({ep['hops']} hops of {sizes} in {ep['trades']} trades, each lap's sizes "
            f"within {ep['lap_qty_spread']:.2%} and prices within {ep['lap_price_spread_bps']:.1f} bps, tolerances "
            f"{settings.quantity_tolerance:.0%} and {settings.price_tolerance_bps:g} bps, every hop within "
            f"{describe_minutes(settings.max_hop_gap_s / 60)}; {ep['ring_flow_share']:.0%} of what the members traded "
            f"with each other in and around it went round the ring): the asset kept returning to its origin, no "
            f"change in beneficial ownership")
        rows.append({
            Finding.PATTERN: Pattern.CIRCULAR_TRADING.value, Finding.SYMBOL: ep[Trade.SYMBOL],
            Finding.USER_IDS: sorted(set(ep["cycle"])), Finding.WINDOW_START: ep["start"],
            Finding.WINDOW_END: ep["end"], Finding.SCORE: score, Finding.EXPLANATION: explanation,
            Finding.EVIDENCE: [f"trade:{t}" for t in ep["trade_ids"]], Finding.METRICS: metrics,
        })
    return rows
