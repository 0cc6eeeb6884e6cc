"""The pump-and-dump detector's events on the tape (the definition and the settings are in `pump.py`): each
event's slices of its symbol's trades, found by as-of joins on the tape sorted by symbol and time, give its
price path (reference, peak, settled low, collapse), its organisers and its evidence. Linear in the slices.
"""
from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import polars as pl

from surveillance_pipeline.contract import Trade
from surveillance_pipeline.detectors.pump_windows import HI_ROW, IS_BUY, LO_ROW, ROW, SYMBOL, TS

if TYPE_CHECKING:
    from surveillance_pipeline.detectors.pump import PumpAndDumpSettings


def _first_rows(events: pl.DataFrame, tape: pl.DataFrame, column: str) -> pl.DataFrame:
    """(event, row of the first trade of its symbol at or after the instant in `column`; null if none).

    The tape is sorted by symbol and time, so a time window is a run of rows: a forward as-of join on the
    tape's distinct instants finds where it starts."""
    instants = tape.group_by(SYMBOL, TS).agg(pl.col(ROW).min()).sort(TS)
    return (events.select("event", SYMBOL, column).sort(column)
            .join_asof(instants, left_on=column, right_on=TS, by=SYMBOL, strategy="forward", check_sortedness=False)
            .select("event", ROW))


def tape_slice(events: pl.DataFrame, tape: pl.DataFrame, lo: str, hi: str) -> pl.DataFrame:
    """Each event's trades of its symbol with lo <= timestamp < hi (columns of `events`): linear in the output."""
    ends = tape.group_by(SYMBOL).agg((pl.col(ROW).max() + 1).alias("_end"))
    rows = (
        events.select("event", SYMBOL)
        .join(_first_rows(events, tape, lo).rename({ROW: LO_ROW}), on="event")
        .join(_first_rows(events, tape, hi).rename({ROW: HI_ROW}), on="event")
        .join(ends, on=SYMBOL)
        .filter(pl.col(LO_ROW).is_not_null())
        .select("event", pl.int_ranges(LO_ROW, pl.coalesce(HI_ROW, "_end"), dtype=pl.Int64).alias(ROW))
        .explode(ROW)
        .drop_nulls(ROW)
    )
    return rows.join(tape, on=ROW).sort("event", ROW)


def price_paths(events: pl.DataFrame, tape: pl.DataFrame, settings: PumpAndDumpSettings) -> pl.DataFrame:
    """Reference price, peak, settled low and collapse time of each event (an event without a trade after its
    peak is dropped: the dump cannot be judged)."""
    price = pl.col(Trade.PRICE)
    events = events.with_columns(
        (pl.col("start_chunk") - timedelta(minutes=settings.reference_minutes)).alias("_ref_from"),
        pl.max_horizontal("spike_end", pl.col("start_chunk") + timedelta(minutes=settings.peak_window_minutes))
        .alias("_peak_to"),
    )
    reference = tape_slice(events, tape, "_ref_from", "start_chunk").group_by("event").agg(
        price.median().alias("_ref_median"))
    # the last trade before the event, for a quiet market with none in the reference window
    previous = (
        _first_rows(events, tape, "start_chunk").join(events.select("event", SYMBOL), on="event")
        .with_columns(pl.col(ROW) - 1).filter(pl.col(ROW) >= 0)
        .join(tape.select(ROW, pl.col(SYMBOL).alias("_symbol"), pl.col(Trade.PRICE).alias("_ref_last")), on=ROW)
        .filter(pl.col("_symbol") == pl.col(SYMBOL)).select("event", "_ref_last")
    )
    body = tape_slice(events, tape, "start_chunk", "_peak_to").group_by("event").agg(
        pl.col(TS).min().alias("start"),
        price.max().alias("peak_price"),
        pl.col(TS).sort_by(price, descending=True, maintain_order=True).first().alias("peak_time"),
    )
    events = (
        events.join(body, on="event").join(reference, on="event", how="left").join(previous, on="event", how="left")
        .with_columns(pl.coalesce("_ref_median", "_ref_last").alias("reference_price"))
        .with_columns(
            (pl.col("peak_price") / pl.col("reference_price") - 1).alias("rise"),
            (pl.col("peak_price") - settings.min_retrace_share * (pl.col("peak_price") - pl.col("reference_price")))
            .alias("_level"),
            (pl.col("peak_time") + timedelta(microseconds=1)).alias("_post_from"),
            (pl.col("peak_time") + timedelta(minutes=settings.dump_horizon_minutes)).alias("_post_to"),
        )
    )
    settle = timedelta(minutes=settings.settle_minutes)
    post = (
        tape_slice(events, tape, "_post_from", "_post_to")
        .join(events.select("event", "_level", "peak_time"), on="event")
        # where the price settled at each trade: the median of the settle_minutes up to it (whole windows only:
        # not one print just after the peak)
        .with_columns(price.rolling_median_by(TS, f"{round(settle.total_seconds() * 1e6)}us").over("event")
                      .alias("_settled"))
        .with_columns(pl.when(pl.col(TS) >= pl.col("peak_time") + settle).then("_settled").alias("_settled"))
    )
    lowest = pl.col("_settled").arg_min()
    post = post.group_by("event").agg(
        # the lowest settled price within the horizon, else (a day ending sooner) the last trade after the peak
        pl.coalesce(pl.col("_settled").min(), price.last()).alias("post_price"),
        pl.coalesce(pl.col(TS).get(lowest), pl.col(TS).last()).alias("settled_time"),
        pl.len().alias("post_trades"),
        pl.col(TS).filter(price <= pl.col("_level")).min().alias("collapse_time"),
    )
    rise = pl.col("peak_price") - pl.col("reference_price")
    return events.join(post, on="event").with_columns(
        pl.when(rise > 0).then((pl.col("peak_price") - pl.col("post_price")) / rise).otherwise(0.0).alias("retrace"),
        pl.coalesce("collapse_time", "_post_to").alias("collapse_time"),
    )


def event_accounts(events: pl.DataFrame, tape: pl.DataFrame, settings: PumpAndDumpSettings) -> pl.DataFrame:
    """The organisers of each event: accounts that accumulated before it and sold into the rise, with the ids
    of those sales (event, account, sold, trade_ids)."""
    qty = pl.col(Trade.QUANTITY)
    windows = events.with_columns(
        (pl.col("start_chunk") - timedelta(hours=settings.accumulation_hours)).alias("_acc_from"),
        (pl.col("collapse_time") + timedelta(microseconds=1)).alias("_into_to"),
    )
    before = tape_slice(windows, tape, "_acc_from", "start_chunk")
    bought = before.group_by("event", pl.col(Trade.BUYER_ID).alias("account")).agg(qty.sum().alias("_bought"))
    sold = before.group_by("event", pl.col(Trade.SELLER_ID).alias("account")).agg(qty.sum().alias("_sold"))
    accumulated = (
        bought.join(sold, on=["event", "account"], how="left").with_columns(pl.col("_sold").fill_null(0.0))
        .with_columns((pl.col("_bought") - pl.col("_sold")).alias("_net"))
        .filter(pl.col("account").is_not_null() & (pl.col("_net") > 0)
                & (pl.col("_net") >= settings.min_accumulation_directionality * (pl.col("_bought") + pl.col("_sold"))))
    )
    into = (
        tape_slice(windows, tape, "start_chunk", "_into_to")
        .group_by("event", pl.col(Trade.SELLER_ID).alias("account"))
        .agg(qty.sum().alias("sold"), pl.col(Trade.TRADE_ID).alias("trade_ids"))
    )
    return (
        accumulated.join(into, on=["event", "account"])
        .filter(pl.col("sold") >= settings.min_sold_into_share * pl.col("_net"))
        # the quantity accumulated and then sold into the rise ranks them
        .with_columns(pl.min_horizontal("_net", "sold").alias("_matched"))
        .sort("event", "_matched", descending=[False, True])
        .group_by("event", maintain_order=True).head(settings.max_named_accounts)
        .select("event", "account", "sold", "trade_ids")
    )


def event_evidence(events: pl.DataFrame, tape: pl.DataFrame, accounts: pl.DataFrame | None,
                   settings: PumpAndDumpSettings) -> pl.DataFrame:
    """Per event: the named accounts' sales into the rise (up to half the cap), then the spike's first buys."""
    cap = settings.max_evidence_trades
    spike_buys = tape_slice(events, tape, "start_chunk", "spike_end").filter(pl.col(IS_BUY)).group_by("event").agg(
        pl.col(Trade.TRADE_ID).head(cap).alias("_buys"))
    evidence = events.select("event").join(spike_buys, on="event", how="left")
    if accounts is not None and accounts.height:
        sales = accounts.explode("trade_ids").group_by("event").agg(pl.col("trade_ids").head(cap // 2).alias("_sales"))
        evidence = evidence.join(sales, on="event", how="left")
    else:
        evidence = evidence.with_columns(pl.lit(None, pl.List(pl.String)).alias("_sales"))
    ids = pl.concat_list(pl.col("_sales").fill_null([]), pl.col("_buys").fill_null([])).list.head(cap)
    return evidence.select("event", ids.list.eval(pl.format("trade:{}", pl.element())).alias("evidence"))
