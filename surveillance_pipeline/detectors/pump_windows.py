"""The pump-and-dump detector's burst windows and events (the definition and the settings are in `pump.py`).

- the tape: the day's trades and the history its baselines need, with each trade's chunk and market buy;
- burst windows: per symbol and chunk, the trades, market buys, rush orders and distinct buyers of the
  windows of each length ending there, each against its own baseline and the pace before it; the spike
  windows; the events they make.
Group_bys, rolling sums by time, cumulative sums and as-of joins: linear in the tape, no loop over rows (the
only Python loops run over the few window lengths).
"""
from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import polars as pl

from surveillance_pipeline.contract import TRADE_SCHEMA, Side, Trade
from surveillance_pipeline.detectors.base import DetectionInputs

if TYPE_CHECKING:
    from surveillance_pipeline.detectors.pump import PumpAndDumpSettings

# working columns
SYMBOL, TS, CHUNK, IS_BUY, ORDER = Trade.SYMBOL, Trade.TIMESTAMP, "_chunk", "_is_buy", "_order"
TODAY, FILLS, HOUR, WINDOW, BUYER = "_today", "_fills", "_hour", "window_chunks", "_buyer"
ROW, LO_ROW, HI_ROW = "_row", "_lo_row", "_hi_row"
COUNTS = ("trades", "buy_orders", "rush_orders")


def window_lengths(settings: PumpAndDumpSettings) -> list[int]:
    """The burst windows' lengths in chunks, shortest first."""
    return sorted({round(minutes * 60 / settings.chunk_seconds) for minutes in settings.burst_windows_minutes})


def build_tape(inputs: DetectionInputs, settings: PumpAndDumpSettings) -> pl.DataFrame:
    """The day's trades and the history its baselines need, of the day's symbols, sorted by symbol and time."""
    columns = [Trade.TRADE_ID, TS, SYMBOL, Trade.SIDE, Trade.PRICE, Trade.QUANTITY, Trade.BUYER_ID,
               Trade.SELLER_ID, Trade.BUYER_ORDER_ID]
    day = inputs.trades.select(columns).with_columns(pl.lit(True).alias(TODAY))
    history = inputs.history.select(columns) if inputs.history.width else pl.DataFrame(schema=TRADE_SCHEMA).select(columns)
    first = inputs.start or day.get_column(TS).min()
    reach = timedelta(hours=max(settings.baseline_hours, settings.accumulation_hours),
                      minutes=max(settings.burst_windows_minutes))
    history = history.filter(pl.col(SYMBOL).is_in(day.get_column(SYMBOL).unique().implode())
                             & (pl.col(TS) >= first - reach) & (pl.col(TS) < first))
    tape = pl.concat([history.with_columns(pl.lit(False).alias(TODAY)), day], how="vertical_relaxed")
    is_buy = pl.col(Trade.SIDE) == Side.BUY.value
    instant = pl.col(TS).dt.truncate(f"{settings.rush_window_ms}ms").dt.epoch("us").cast(pl.UInt64)
    order_id = pl.when(pl.col(Trade.BUYER_ORDER_ID).is_not_null()).then(pl.col(Trade.BUYER_ORDER_ID).hash())
    return tape.sort(SYMBOL, TS, maintain_order=True).with_columns(
        is_buy.alias(IS_BUY),
        pl.col(TS).dt.truncate(f"{settings.chunk_seconds}s").alias(CHUNK),
        # one market buy: its order id (hashed: cheaper to group), else its instant (an anonymous tape prints
        # an order's fills at once); an id's hash meeting an instant's epoch value is a ~1e-8 chance a day
        pl.when(is_buy).then(pl.coalesce(order_id, instant)).alias(ORDER),
    ).with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))


def chunk_counts(tape: pl.DataFrame, settings: PumpAndDumpSettings) -> pl.DataFrame:
    """Per symbol and chunk with a trade: trades, market buys, rush orders, whether it is the day's, and the
    baselines per chunk; sorted by symbol and chunk."""
    orders = (
        tape.filter(pl.col(IS_BUY)).group_by(SYMBOL, ORDER)
        .agg(pl.col(CHUNK).min(), pl.len().alias(FILLS))
        .group_by(SYMBOL, CHUNK)
        .agg(pl.len().alias("buy_orders"), (pl.col(FILLS) >= 2).sum().alias("rush_orders"))
    )
    chunks = (
        tape.group_by(SYMBOL, CHUNK).agg(pl.len().alias("trades"), pl.col(TODAY).any())
        .join(orders, on=[SYMBOL, CHUNK], how="left")
        .with_columns(pl.col("buy_orders", "rush_orders").fill_null(0).cast(pl.UInt32),
                      pl.col("trades").cast(pl.UInt32), pl.col(CHUNK).dt.truncate("1h").alias(HOUR))
    )
    return chunks.join(_hourly_baselines(chunks, settings), on=[SYMBOL, HOUR], how="left").sort(SYMBOL, CHUNK)


def _hourly_baselines(chunks: pl.DataFrame, settings: PumpAndDumpSettings) -> pl.DataFrame:
    """Per symbol and hour: the ordinary trades and buy orders per chunk before it, from the median hour of the
    previous baseline_hours (hours without trades count as 0; a shorter tape uses the hours it has).

    A median, not a mean: one earlier burst (another pump, an algorithm's busy hour) does not raise the bar."""
    counts = chunks.group_by(SYMBOL, HOUR).agg(pl.col("trades", "buy_orders").sum())
    grid = (
        counts.group_by(SYMBOL).agg(pl.datetime_ranges(pl.col(HOUR).min(), pl.col(HOUR).max(), "1h").alias(HOUR))
        .explode(HOUR)
        .join(counts, on=[SYMBOL, HOUR], how="left")
        .with_columns(pl.col("trades", "buy_orders").fill_null(0), pl.lit(1).alias("_bin"))
        .sort(SYMBOL, HOUR)
    )
    window = f"{int(settings.baseline_hours * 3600)}s"
    chunks_per_hour = 3600 / settings.chunk_seconds
    past = {c: pl.col(c).cast(pl.Float64).rolling_median_by(HOUR, window, closed="left").over(SYMBOL)
            for c in ("trades", "buy_orders")}
    return grid.select(
        SYMBOL, HOUR,
        pl.col("_bin").rolling_sum_by(HOUR, window, closed="left").over(SYMBOL).fill_null(0).alias("baseline_hours_seen"),
        # an hour without a trade is rated at one per hour, not zero: no division by nothing
        *((past[c].fill_null(0).clip(1) / chunks_per_hour).alias(f"baseline_{c}") for c in ("trades", "buy_orders")),
    )


def _window_buyers(tape: pl.DataFrame, settings: PumpAndDumpSettings) -> pl.DataFrame:
    """Distinct buyers (taker-buy accounts) of the window of each length ending at each chunk: (symbol, chunk
    time, window_chunks, buyers), valid from that time to the next row of the symbol and length.

    Each buyer is counted once per window through its latest appearance: an appearance at chunk c counts for the
    windows ending from c until the buyer's next appearance or until c falls out of the window, whichever is
    first; a +1 / -1 per appearance and a cumulative sum give the count."""
    cs = settings.chunk_seconds
    lengths = window_lengths(settings)
    first_day_chunk = pl.col(CHUNK).filter(pl.col(TODAY)).min() - timedelta(seconds=cs * max(lengths))
    seen = (
        tape.filter(pl.col(IS_BUY) & pl.col(Trade.BUYER_ID).is_not_null() & (pl.col(CHUNK) >= first_day_chunk))
        .select(SYMBOL, pl.col(Trade.BUYER_ID).alias(BUYER), CHUNK).unique()
        .sort(SYMBOL, BUYER, CHUNK)
        .with_columns(pl.col(CHUNK).shift(-1).over(SYMBOL, BUYER).alias("_next"))
    )
    steps = []
    for k in lengths:  # the few window lengths
        until = pl.min_horizontal("_next", pl.col(CHUNK) + timedelta(seconds=cs * k))
        steps += [seen.select(SYMBOL, pl.col(CHUNK).alias("_at"), pl.lit(1).alias("_step"), pl.lit(k).alias(WINDOW)),
                  seen.select(SYMBOL, until.alias("_at"), pl.lit(-1).alias("_step"), pl.lit(k).alias(WINDOW))]
    return (
        pl.concat(steps).group_by(SYMBOL, WINDOW, "_at").agg(pl.col("_step").sum())
        .sort(SYMBOL, WINDOW, "_at")
        .select(SYMBOL, WINDOW, "_at", pl.col("_step").cum_sum().over(SYMBOL, WINDOW).alias("buyers"))
        .sort("_at")
    )


def spike_windows(chunks: pl.DataFrame, tape: pl.DataFrame, settings: PumpAndDumpSettings,
                  has_accounts: bool) -> pl.DataFrame:
    """Per chunk of the day that ends a spike window (see pump.py): the shortest such window, its measures
    and baselines (window_start, window_chunks, trades, buy_orders, rush_orders, buyers, multiples), from the
    tape's `chunk_counts`."""
    cs = settings.chunk_seconds
    windows = []
    before = round(settings.reference_minutes * 60)
    for k in window_lengths(settings):  # the few window lengths; each a rolling sum by time per symbol
        rolled = [pl.col(c).rolling_sum_by(CHUNK, f"{k * cs}s").over(SYMBOL).alias(c) for c in COUNTS]
        # trades in the reference_minutes before the window's start: sums over the time left of the chunk
        left = pl.col("trades").rolling_sum_by(CHUNK, f"{(k - 1) * cs + before}s", closed="left").over(SYMBOL)
        if k > 1:
            left = left - pl.col("trades").rolling_sum_by(CHUNK, f"{(k - 1) * cs}s", closed="left").over(SYMBOL)
        windows.append(chunks.with_columns(*rolled, left.fill_null(0).alias("prior_trades"), pl.lit(k).alias(WINDOW))
                       .filter(pl.col(TODAY)))
    frame = pl.concat(windows).with_columns(
        (pl.col(CHUNK) - pl.duration(seconds=(pl.col(WINDOW) - 1) * cs)).alias("window_start"),
        (pl.col("baseline_trades") * pl.col(WINDOW)).alias("baseline_trades"),
        (pl.col("baseline_buy_orders") * pl.col(WINDOW)).alias("baseline_buy_orders"),
    ).with_columns(
        (pl.col("trades") / pl.col("baseline_trades")).alias("trade_multiple"),
        (pl.col("buy_orders") / pl.col("baseline_buy_orders")).alias("buy_order_multiple"),
        # the window's pace against the pace of the half hour before it
        (pl.col("trades") / (pl.col("prior_trades") * pl.col(WINDOW) * cs / before)).alias("onset_multiple"),
    )
    spike = (
        (pl.col("baseline_hours_seen") >= settings.min_baseline_hours)
        & (pl.col("buy_orders") >= settings.min_buy_orders)
        & (pl.col("trade_multiple") >= settings.trade_count_multiple)
        & (pl.col("buy_order_multiple") >= settings.buy_order_multiple)
        & (pl.col("rush_orders") >= settings.min_rush_orders)
        # over one chunk the crowd's simultaneity is the evidence; over a longer window its market buys must be
        # rush orders, a rush's trait that a slicing algorithm or a building rally lacks (see pump.py)
        & ((pl.col(WINDOW) == 1) | (pl.col("rush_orders") >= settings.min_buy_orders))
    )
    frame = frame.filter(spike)
    if has_accounts:
        frame = (frame.sort(CHUNK)
                 .join_asof(_window_buyers(tape, settings), left_on=CHUNK, right_on="_at", by=[SYMBOL, WINDOW],
                            check_sortedness=False)
                 .with_columns(pl.col("buyers").fill_null(0))
                 .filter(pl.col("buyers") >= settings.min_distinct_buyers).drop("_at"))
    else:
        frame = frame.with_columns(pl.lit(None, pl.Int64).alias("buyers"))
    # the tightest evidence: the shortest window that passes at each chunk; whether any passing window there
    # is sudden (see events_of)
    sudden = (pl.col("onset_multiple") >= settings.onset_multiple).any().over(SYMBOL, CHUNK)
    return frame.with_columns(sudden.alias("sudden")).filter(pl.col(WINDOW) == pl.col(WINDOW).min().over(SYMBOL, CHUNK))


def events_of(spikes: pl.DataFrame, chunks: pl.DataFrame, settings: PumpAndDumpSettings) -> pl.DataFrame:
    """Spike windows of one symbol less than merge_gap_minutes apart, as one event each.

    A window longer than the burst also holds the quiet minutes before it, so the event starts at the first
    chunk of its windows whose market buys alone reach buy_order_multiple x their ordinary rate (the rush's
    first minute), else at its first window's start; its trades, market buys and rush orders are counted from
    there to its last window's end."""
    if spikes.is_empty():
        return pl.DataFrame()
    chunk = timedelta(seconds=settings.chunk_seconds)
    previous_end = (pl.col(CHUNK).shift(1) + chunk).over(SYMBOL)
    new = ((pl.col("window_start") - previous_end) > timedelta(minutes=settings.merge_gap_minutes)).fill_null(True)
    busiest = pl.col("trade_multiple").arg_max()
    events = (
        spikes.sort(SYMBOL, CHUNK).with_columns(new.cum_sum().alias("event"))
        .group_by("event")
        .agg(
            pl.col(SYMBOL).first(),
            pl.col("window_start").min().alias("_first_window"),
            (pl.col(CHUNK).max() + chunk).alias("spike_end"),
            pl.len().alias("spike_windows"),
            pl.col("rush_orders").max().alias("max_rush_orders"),
            pl.col("buyers").max().alias("max_buyers"),
            pl.col("trade_multiple").max(),
            pl.col("buy_order_multiple").max(),
            pl.col("baseline_trades").get(busiest),
            pl.col("baseline_buy_orders").get(busiest),
            (pl.col(WINDOW).get(busiest) * settings.chunk_seconds / 60).alias("busiest_window_minutes"),
            pl.col("baseline_hours_seen").get(pl.col(CHUNK).arg_min()),
            pl.col("sudden").any(),
            # infinite after a silent half hour: no number to report
            pl.col("onset_multiple").filter(pl.col("onset_multiple").is_finite()).max(),
        )
    )
    events = events.filter(pl.col("sudden")).drop("sudden")
    if events.is_empty():
        return pl.DataFrame()
    hot = pl.col("buy_orders") >= settings.buy_order_multiple * pl.col("baseline_buy_orders")
    start = pl.coalesce(pl.col(CHUNK).filter(hot).min(), pl.col("_first_window").first())
    totals = (
        events.select("event", SYMBOL, "_first_window", "spike_end")
        .join(chunks.select(SYMBOL, CHUNK, *COUNTS, "baseline_buy_orders"), on=SYMBOL)
        .filter((pl.col(CHUNK) >= pl.col("_first_window")) & (pl.col(CHUNK) < pl.col("spike_end")))
        .group_by("event")
        .agg(start.alias("start_chunk"), *(pl.col(c).filter(pl.col(CHUNK) >= start).sum().alias(f"spike_{c}")
                                           for c in COUNTS))
    )
    return events.join(totals, on="event").drop("_first_window")
