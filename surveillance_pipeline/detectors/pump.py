"""Pump-and-dump: a coordinated rush of market buys that inflates a thin market's price, then the collapse.

The definition (SEC and CFTC investor alerts; the crypto form in Kamps & Kleinberg, "To the moon", Crime
Science 2018, and La Morgia et al., "Pump and dumps in the Bitcoin era", ICCCN 2020 / "The Doge of Wall
Street", 2021): organisers buy quietly, a crowd is told to buy at one instant, the crowd's market buys inflate
the price within seconds to minutes, the organisers sell into the rise, and the price collapses once the
buying stops. It is visible on an anonymous public tape, so this detector reads only what such a tape has
(time, price, quantity, taker side) and uses accounts only to name them when they exist.

Per symbol, the tape (the day plus `inputs.history` for the baselines) is cut into chunks of `chunk_seconds`
(La Morgia et al. use chunks of seconds). The baseline of a chunk is the symbol's median hour over the previous
`baseline_hours` (hours without trades count; a tape shorter than that uses the hours it has, at least
`min_baseline_hours`), per chunk: a median, so an earlier burst does not raise the bar. A chunk of the day is a
**spike** when all hold:
- its trade count is at least `trade_count_multiple` x the baseline's;
- its market buys (taker-buy trades grouped by buyer_order_id, or on a tape without order ids by their
  `rush_window_ms` instant: a venue prints one order's fills at once) are at least `min_buy_orders` and
  `buy_order_multiple` x the baseline's, and at least `min_rush_orders` of them are **rush orders**, filled as
  >= 2 trades (a market buy sweeping the book, La Morgia et al.'s strongest pump feature);
- where accounts exist, the buyers are a crowd: at least `min_distinct_buyers` distinct buyer ids.
Spike chunks of a symbol less than `merge_gap_minutes` apart are one **event**. It is a pump-and-dump when its
price path has both halves:
- **pump**: the highest trade price from the event's start to `peak_window_minutes` later (or its last spike
  chunk) is at least `min_price_rise` above the reference price (median trade price of the
  `reference_minutes` before the event, else the last trade before it);
- **dump**: the price `dump_horizon_minutes` after the peak (median of that horizon's last `settle_minutes`,
  else the last trade after the peak) has given back at least `min_retrace_share` of the rise. A news-driven
  rally keeps most of its gain: it fails here however many buyers it had. Only the day's trades are seen, so a
  pump in the day's last hour is judged on the trades left in the day.
The finding's window runs from the event's first trade to the collapse: the first trade after the peak at or
below peak - min_retrace_share x (peak - reference) (the horizon's end if none).

Where accounts exist, the finding names the **organisers**: accounts that accumulated in the
`accumulation_hours` before the event (net bought, at least `min_accumulation_directionality` of their gross
volume: a market maker's two-way flow is not accumulation) and sold at least `min_sold_into_share` of that
position between the event's start and the collapse; at most `max_named_accounts`, ranked by the quantity
both accumulated and sold into the rise. Their sales lead the evidence, then the spike's buys.

Score (0..1): each of the five measures (trade-count multiple, buy-order multiple, rush orders of the busiest
chunk, price rise, retrace share) divided by its threshold is an odds ratio >= 1 on a finding; their geometric
mean g gives score = g / (1 + g): 0.5 for an event just at every threshold, 0.9 when they are ~9x beyond.

All of it is group_bys over chunks and hours, rolling windows by time, and as-of joins that find each event's
few windows of its symbol's trades: linear in the tape, no pairwise comparison of trades.
"""
from __future__ import annotations

import math
from datetime import timedelta

import polars as pl
from pydantic import Field

from surveillance_pipeline.contract import TRADE_SCHEMA, Pattern, Side, Trade
from surveillance_pipeline.detectors.base import DetectionInputs, DetectorSettings, Finding, empty_findings, findings_frame



class PumpAndDumpSettings(DetectorSettings):
    """Thresholds of the pump-and-dump detector (market level; works on anonymous tapes)."""

    chunk_seconds: int = Field(
        60, ge=1, le=3_600,
        description="length of the chunks the tape is cut into: a Telegram pump's crowd arrives within seconds "
                    "of the signal and the peak comes in the first minute or two (La Morgia et al. score 5 to "
                    "25 s chunks); a minute holds the rush whole without diluting it in ordinary trading")
    baseline_hours: float = Field(
        24.0, gt=0, le=24 * 30,
        description="rolling window, before each chunk, of the symbol's ordinary activity: a day covers the "
                    "daily cycle (Kamps & Kleinberg compare with rolling windows of hours), so a quiet night "
                    "does not make the morning look like a spike")
    min_baseline_hours: float = Field(
        1.0, gt=0, le=24 * 30,
        description="least history a chunk needs before it can be called a spike: a tape shorter than "
                    "baseline_hours uses what it has, but an hour is the least that estimates a rate")
    min_buy_orders: int = Field(
        30, ge=1,
        description="least market buys in a spike chunk: a pump's crowd is dozens of buyers at once; on a pair "
                    "that trades once a minute, one order sweeping ten price levels is a large multiple of "
                    "trades but a single buyer")
    trade_count_multiple: float = Field(
        10.0, gt=1,
        description="least ratio of a spike chunk's trade count to the symbol's mean per chunk over the "
                    "baseline: an order of magnitude, far beyond a busy minute (a few x) while a pump's first "
                    "minute runs at hundreds of times its pair's ordinary rate")
    buy_order_multiple: float = Field(
        10.0, gt=1,
        description="least ratio of a spike chunk's buy orders (market buys) to their mean per chunk over the "
                    "baseline: the rush is buying, not just trading; same order of magnitude as the trade count")
    min_rush_orders: int = Field(
        5, ge=1,
        description="least rush orders in a spike chunk: market buys filled as >= 2 trades at one instant "
                    "(they sweep the book, La Morgia et al.'s strongest pump feature); an ordinary minute on a "
                    "thin pair has none or one, a handful means several buyers lifting every ask at once")
    rush_window_ms: int = Field(
        1, ge=1, le=1_000,
        description="on a tape without buyer order ids, taker-buy trades within one such window (epoch-aligned) "
                    "are one market buy: a venue prints one order's fills with one timestamp, to the ms")
    min_distinct_buyers: int = Field(
        10, ge=1,
        description="where accounts exist, least distinct buyers in a spike chunk: a pump recruits a crowd; a "
                    "few accounts trading a lot is another typology (excessive trading, wash trading)")
    merge_gap_minutes: float = Field(
        30.0, ge=0, le=24 * 60,
        description="spike chunks of one symbol closer than this are one event: a pump's crowd comes in waves "
                    "over its first minutes and the announcement is often repeated; one event, one finding")
    reference_minutes: float = Field(
        30.0, gt=0, le=24 * 60,
        description="the reference price is the median trade price over this many minutes before the event: "
                    "the price the crowd was told to buy at, robust to one odd print")
    peak_window_minutes: float = Field(
        10.0, gt=0, le=24 * 60,
        description="the peak is sought from the event's start to this many minutes later (or the last spike "
                    "chunk): a pump is rapid, its top comes within minutes of the signal, not hours")
    min_price_rise: float = Field(
        0.05, gt=0, le=100,
        description="least rise of the peak over the reference price, as a fraction (0.05 = 5 %): a pump "
                    "inflates the price (SEC, CFTC); pump groups target tens of percent, while a minute's "
                    "ordinary move on a listed pair is well under a percent; 5 % keeps failed, small pumps in")
    dump_horizon_minutes: float = Field(
        60.0, gt=0, le=24 * 60,
        description="the dump is read over this many minutes after the peak: pumped prices collapse within "
                    "minutes once the rush stops (Kamps & Kleinberg; La Morgia et al.); an hour sees it through")
    settle_minutes: float = Field(
        15.0, gt=0, le=24 * 60,
        description="the price the dump is judged on is the median trade price over the last this-many minutes "
                    "of the dump horizon (the last trade after the peak when none): where the price settled "
                    "an hour on, not one dip or one late buyer")
    min_retrace_share: float = Field(
        0.5, gt=0, le=1,
        description="least share of the rise given back by the settled price: at or below peak - share x "
                    "(peak - reference). A pump collapses towards where it started; a news rally keeps most of "
                    "its gain (sustained), so more than half of it given back within the horizon is the dump")
    accumulation_hours: float = Field(
        6.0, gt=0, le=24 * 30,
        description="where accounts exist, how far before the event organisers' accumulation is sought: pump "
                    "organisers buy in the hours before the signal (Fantazzini & Xiao 2023 find insiders' buying "
                    "concentrated in the last hour); a longer window drowns it in their ordinary trading")
    min_accumulation_directionality: float = Field(
        0.2, gt=0, le=1,
        description="least (bought - sold) / (bought + sold) of an account over the accumulation window for it to "
                    "have accumulated: an organiser's net buying is a real share of what it traded; a market "
                    "maker's, a few percent of its two-way volume, is not")
    min_sold_into_share: float = Field(
        0.5, gt=0, le=1,
        description="least share of its accumulated (net bought) position an account sells between the event's "
                    "start and the collapse to be named: organisers unload most of it into the rise they caused")
    max_named_accounts: int = Field(
        5, ge=1, le=1_000,
        description="at most this many organisers are named, ranked by the quantity they both accumulated and "
                    "sold into the rise: a pump is run by a handful of admins; beyond them the list fills with "
                    "holders who merely took profit")
    max_evidence_trades: int = Field(
        300, ge=1, le=100_000,
        description="evidence cap: the event's first spike buys and the named accounts' sales into the rise")


# working columns
SYMBOL, TS, CHUNK, IS_BUY, ORDER = Trade.SYMBOL, Trade.TIMESTAMP, "_chunk", "_is_buy", "_order"
TODAY, FILLS, HOUR = "_today", "_fills", "_hour"
ROW, LO_ROW, HI_ROW = "_row", "_lo_row", "_hi_row"


def detect_pump_and_dump(inputs: DetectionInputs, settings: PumpAndDumpSettings) -> pl.DataFrame:
    """One finding per pump-and-dump event of the day (see the module docstring)."""
    if not settings.enabled or inputs.trades.is_empty():
        return empty_findings()
    tape = _tape(inputs, settings)
    events = _events(_spike_chunks(tape, settings, inputs.has_accounts), settings)
    if events.is_empty():
        return empty_findings()
    events = _event_price_paths(events, tape, settings).filter(
        (pl.col("rise") >= settings.min_price_rise) & (pl.col("retrace") >= settings.min_retrace_share))
    if events.is_empty():
        return empty_findings()
    accounts = _event_accounts(events, tape, settings) if inputs.has_accounts else None
    events = events.join(_event_evidence(events, tape, accounts, settings), on="event", how="left")
    named: dict[int, dict] = {}
    if accounts is not None:
        summary = accounts.group_by("event").agg(pl.col("account").sort().alias("accounts"), pl.col("sold").sum())
        named = {row["event"]: row for row in summary.iter_rows(named=True)}
    rows = [_finding(event, named.get(event["event"]), settings) for event in events.iter_rows(named=True)]
    return findings_frame(rows).sort(Finding.WINDOW_START, Finding.SYMBOL)


def _tape(inputs: DetectionInputs, settings: PumpAndDumpSettings) -> pl.DataFrame:
    """The day's trades and the history its baselines need, of the day's symbols, sorted by symbol and time."""
    columns = [Trade.TRADE_ID, TS, SYMBOL, Trade.SIDE, Trade.PRICE, Trade.QUANTITY, Trade.BUYER_ID,
               Trade.SELLER_ID, Trade.BUYER_ORDER_ID]
    day = inputs.trades.select(columns).with_columns(pl.lit(True).alias(TODAY))
    history = inputs.history.select(columns) if inputs.history.width else pl.DataFrame(schema=TRADE_SCHEMA).select(columns)
    first = inputs.start or day.get_column(TS).min()
    reach = timedelta(hours=max(settings.baseline_hours, settings.accumulation_hours))
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


def _spike_chunks(tape: pl.DataFrame, settings: PumpAndDumpSettings, has_accounts: bool) -> pl.DataFrame:
    """The day's chunks that pass every spike test, with their measures and baselines."""
    orders = (
        tape.filter(pl.col(IS_BUY)).group_by(SYMBOL, ORDER)
        .agg(pl.col(CHUNK).min(), pl.len().alias(FILLS))
        .group_by(SYMBOL, CHUNK)
        .agg(pl.len().alias("buy_orders"), (pl.col(FILLS) >= 2).sum().alias("rush_orders"))
    )
    chunks = (
        tape.group_by(SYMBOL, CHUNK)
        .agg(
            pl.len().alias("trades"),
            pl.col(Trade.BUYER_ID).filter(pl.col(IS_BUY)).n_unique().alias("buyers"),
            pl.col(TODAY).any(),
        )
        .join(orders, on=[SYMBOL, CHUNK], how="left")
        .with_columns(pl.col("buy_orders", "rush_orders").fill_null(0), pl.col(CHUNK).dt.truncate("1h").alias(HOUR))
    )
    chunks = chunks.join(_hourly_baselines(chunks, settings), on=[SYMBOL, HOUR], how="left").with_columns(
        (pl.col("trades") / pl.col("baseline_trades")).alias("trade_multiple"),
        (pl.col("buy_orders") / pl.col("baseline_buy_orders")).alias("buy_order_multiple"),
    )
    spike = (
        pl.col(TODAY)
        & (pl.col("baseline_hours_seen") >= settings.min_baseline_hours)
        & (pl.col("buy_orders") >= settings.min_buy_orders)
        & (pl.col("trade_multiple") >= settings.trade_count_multiple)
        & (pl.col("buy_order_multiple") >= settings.buy_order_multiple)
        & (pl.col("rush_orders") >= settings.min_rush_orders)
    )
    if has_accounts:
        spike = spike & (pl.col("buyers") >= settings.min_distinct_buyers)
    return chunks.filter(spike)


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


def _events(spikes: pl.DataFrame, settings: PumpAndDumpSettings) -> pl.DataFrame:
    """Spike chunks of one symbol less than merge_gap_minutes apart, as one event each."""
    if spikes.is_empty():
        return pl.DataFrame()
    gap = timedelta(seconds=settings.chunk_seconds) + timedelta(minutes=settings.merge_gap_minutes)
    new = ((pl.col(CHUNK) - pl.col(CHUNK).shift(1).over(SYMBOL)) > gap).fill_null(True)
    first, busiest = pl.col(CHUNK).arg_min(), pl.col("trade_multiple").arg_max()
    return (
        spikes.sort(SYMBOL, CHUNK).with_columns(new.cum_sum().alias("event"))
        .group_by("event")
        .agg(
            pl.col(SYMBOL).first(),
            pl.col(CHUNK).min().alias("start_chunk"),
            (pl.col(CHUNK).max() + timedelta(seconds=settings.chunk_seconds)).alias("spike_end"),
            pl.len().alias("spike_chunks"),
            pl.col("trades").sum().alias("spike_trades"),
            pl.col("buy_orders").sum().alias("spike_buy_orders"),
            pl.col("rush_orders").sum().alias("spike_rush_orders"),
            pl.col("rush_orders").max().alias("max_rush_orders"),
            pl.col("buyers").max().alias("max_buyers"),
            pl.col("trade_multiple").max(),
            pl.col("buy_order_multiple").max(),
            pl.col("baseline_trades").get(busiest),
            pl.col("baseline_buy_orders").get(busiest),
            pl.col("baseline_hours_seen").get(first),
        )
    )


def _score(event: dict, settings: PumpAndDumpSettings) -> float:
    ratios = [
        event["trade_multiple"] / settings.trade_count_multiple,
        event["buy_order_multiple"] / settings.buy_order_multiple,
        event["max_rush_orders"] / settings.min_rush_orders,
        event["rise"] / settings.min_price_rise,
        event["retrace"] / settings.min_retrace_share,
    ]
    odds = math.exp(sum(math.log(max(r, 1e-9)) for r in ratios) / len(ratios))
    return odds / (1.0 + odds)


def _finding(event: dict, named: dict | None, settings: PumpAndDumpSettings) -> dict:
    minutes = (event["spike_end"] - event["start_chunk"]).total_seconds() / 60
    explanation = (
        f"{event['spike_trades']:,} trades in {minutes:g} min from {event['start']:%Y-%m-%d %H:%M} UTC, the "
        f"busiest {settings.chunk_seconds} s {event['trade_multiple']:.0f}x the usual "
        f"{event['baseline_trades']:.2f} (median hour of the previous {settings.baseline_hours:g} h); "
        f"{event['spike_buy_orders']:,} market buys (busiest {settings.chunk_seconds} s "
        f"{event['buy_order_multiple']:.0f}x the usual), {event['spike_rush_orders']:,} of them rush orders; "
        f"price rose {event['rise']:.1%} from {event['reference_price']:.8g} to {event['peak_price']:.8g} by "
        f"{event['peak_time']:%H:%M:%S}, then gave back {event['retrace']:.0%} of the rise (at "
        f"{event['post_price']:.8g} {settings.dump_horizon_minutes:g} min after the peak)"
    )
    metrics = {key: event[key] for key in (
        "spike_chunks", "spike_trades", "spike_buy_orders", "spike_rush_orders", "trade_multiple",
        "buy_order_multiple", "baseline_trades", "baseline_buy_orders", "reference_price", "peak_price",
        "post_price", "rise", "retrace", "post_trades")}
    metrics["baseline_hours_seen"] = event["baseline_hours_seen"]
    metrics["peak_time"] = event["peak_time"].isoformat()
    if event["max_buyers"]:
        metrics["max_distinct_buyers"] = event["max_buyers"]
    accounts: list[str] = []
    if named:  # the organisers: accumulated before the spike, sold into it
        accounts = named["accounts"]
        explanation += (f"; {len(accounts)} account(s) that had accumulated before the spike sold "
                        f"{named['sold']:.6g} into it")
        metrics.update(named_accounts=len(accounts), named_accounts_sold_into_rise=named["sold"])
    return {
        Finding.PATTERN: Pattern.PUMP_AND_DUMP.value, Finding.SYMBOL: event[SYMBOL], Finding.USER_IDS: accounts,
        Finding.WINDOW_START: event["start"], Finding.WINDOW_END: event["collapse_time"],
        Finding.SCORE: _score(event, settings), Finding.EXPLANATION: explanation,
        Finding.EVIDENCE: event["evidence"] or [], Finding.METRICS: metrics,
    }


# -- the events' price paths, organisers and evidence: slices of the tape, found by as-of joins ---------------


def _first_rows(events: pl.DataFrame, tape: pl.DataFrame, column: str) -> pl.DataFrame:
    """(event, row of the first trade of its symbol at or after the instant in `column`; null if none).

    The tape is sorted by symbol and time, so a time window is a run of rows: a forward as-of join on the
    tape's distinct instants finds where it starts."""
    instants = tape.group_by(SYMBOL, TS).agg(pl.col(ROW).min()).sort(TS)
    return (events.select("event", SYMBOL, column).sort(column)
            .join_asof(instants, left_on=column, right_on=TS, by=SYMBOL, strategy="forward", check_sortedness=False)
            .select("event", ROW))


def _slice(events: pl.DataFrame, tape: pl.DataFrame, lo: str, hi: str) -> pl.DataFrame:
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


def _event_price_paths(events: pl.DataFrame, tape: pl.DataFrame, settings: PumpAndDumpSettings) -> pl.DataFrame:
    """Reference price, peak, settled price and collapse time of each event (an event without a trade after its
    peak is dropped: the dump cannot be judged)."""
    price = pl.col(Trade.PRICE)
    events = events.with_columns(
        (pl.col("start_chunk") - timedelta(minutes=settings.reference_minutes)).alias("_ref_from"),
        pl.max_horizontal("spike_end", pl.col("start_chunk") + timedelta(minutes=settings.peak_window_minutes))
        .alias("_peak_to"),
    )
    reference = _slice(events, tape, "_ref_from", "start_chunk").group_by("event").agg(
        price.median().alias("_ref_median"))
    # the last trade before the event, for a quiet market with none in the reference window
    previous = (
        _first_rows(events, tape, "start_chunk").join(events.select("event", SYMBOL), on="event")
        .with_columns(pl.col(ROW) - 1).filter(pl.col(ROW) >= 0)
        .join(tape.select(ROW, pl.col(SYMBOL).alias("_symbol"), pl.col(Trade.PRICE).alias("_ref_last")), on=ROW)
        .filter(pl.col("_symbol") == pl.col(SYMBOL)).select("event", "_ref_last")
    )
    body = _slice(events, tape, "start_chunk", "_peak_to").group_by("event").agg(
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
    settle_from = pl.col("_post_to") - timedelta(minutes=settings.settle_minutes)
    post = _slice(events, tape, "_post_from", "_post_to").join(
        events.select("event", "_level", settle_from.alias("_settle_from")), on="event")
    late = pl.col(TS) >= pl.col("_settle_from")
    post = post.group_by("event").agg(
        # where the price settled: the median of the horizon's last minutes, else the last trade after the peak
        pl.coalesce(price.filter(late).median(), price.last()).alias("post_price"),
        pl.len().alias("post_trades"),
        pl.col(TS).filter(price <= pl.col("_level")).min().alias("collapse_time"),
    )
    rise = pl.col("peak_price") - pl.col("reference_price")
    return events.join(post, on="event").with_columns(
        pl.when(rise > 0).then((pl.col("peak_price") - pl.col("post_price")) / rise).otherwise(0.0).alias("retrace"),
        pl.coalesce("collapse_time", "_post_to").alias("collapse_time"),
    )


def _event_accounts(events: pl.DataFrame, tape: pl.DataFrame, settings: PumpAndDumpSettings) -> pl.DataFrame:
    """The organisers of each event: accounts that accumulated before it and sold into the rise, with the ids
    of those sales (event, account, sold, trade_ids)."""
    qty = pl.col(Trade.QUANTITY)
    windows = events.with_columns(
        (pl.col("start_chunk") - timedelta(hours=settings.accumulation_hours)).alias("_acc_from"),
        (pl.col("collapse_time") + timedelta(microseconds=1)).alias("_into_to"),
    )
    before = _slice(windows, tape, "_acc_from", "start_chunk")
    bought = before.group_by("event", pl.col(Trade.BUYER_ID).alias("account")).agg(qty.sum().alias("_bought"))
    sold = before.group_by("event", pl.col(Trade.SELLER_ID).alias("account")).agg(qty.sum().alias("_sold"))
    accumulated = (
        bought.join(sold, on=["event", "account"], how="left").with_columns(pl.col("_sold").fill_null(0.0))
        .with_columns((pl.col("_bought") - pl.col("_sold")).alias("_net"))
        .filter(pl.col("account").is_not_null() & (pl.col("_net") > 0)
                & (pl.col("_net") >= settings.min_accumulation_directionality * (pl.col("_bought") + pl.col("_sold"))))
    )
    into = (
        _slice(windows, tape, "start_chunk", "_into_to")
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


def _event_evidence(events: pl.DataFrame, tape: pl.DataFrame, accounts: pl.DataFrame | None,
                    settings: PumpAndDumpSettings) -> pl.DataFrame:
    """Per event: the named accounts' sales into the rise (up to half the cap), then the spike's first buys."""
    cap = settings.max_evidence_trades
    spike_buys = _slice(events, tape, "start_chunk", "spike_end").filter(pl.col(IS_BUY)).group_by("event").agg(
        pl.col(Trade.TRADE_ID).head(cap).alias("_buys"))
    evidence = events.select("event").join(spike_buys, on="event", how="left")
    if accounts is not None and accounts.height:
        sales = accounts.explode("trade_ids").group_by("event").agg(pl.col("trade_ids").head(cap // 2).alias("_sales"))
        evidence = evidence.join(sales, on="event", how="left")
    else:
        evidence = evidence.with_columns(pl.lit(None, pl.List(pl.String)).alias("_sales"))
    ids = pl.concat_list(pl.col("_sales").fill_null([]), pl.col("_buys").fill_null([])).list.head(cap)
    return evidence.select("event", ids.list.eval(pl.format("trade:{}", pl.element())).alias("evidence"))
