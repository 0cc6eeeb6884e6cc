"""Pump-and-dump: a coordinated rush of market buys that inflates a thin market's price, then the collapse.

The definition (SEC and CFTC investor alerts; the crypto form in Kamps & Kleinberg, "To the moon", Crime
Science 2018, Xu & Livshits, "The anatomy of a cryptocurrency pump-and-dump scheme", USENIX Security 2019, and
La Morgia et al., "Pump and dumps in the Bitcoin era", ICCCN 2020 / "The Doge of Wall Street", 2021): organisers
buy quietly, a crowd is told to buy at one instant, the crowd's market buys inflate the price within seconds to
minutes, the organisers sell into the rise, and the price collapses once the buying stops. It is visible on an
anonymous public tape, so this detector reads only what such a tape has (time, price, quantity, taker side) and
uses accounts only to name them when they exist.

Per symbol, the tape (the day plus `inputs.history` for the baselines) is cut into chunks of `chunk_seconds`.
The baseline of a chunk is the symbol's median hour over the previous `baseline_hours` (hours without trades
count; a tape shorter than that uses the hours it has, at least `min_baseline_hours`), per chunk: a median, so
an earlier burst does not raise the bar. The crowd's burst is measured over **windows** of each length in
`burst_windows_minutes` (1, 3 and 5 minutes), ending at every chunk of the day: a big channel's crowd arrives
within a minute of the signal, a small or slow one over a few; each window is compared with its own baseline
(the per-chunk baseline times its length), so a longer window needs proportionally more buying to stand out.
A window is a **spike** when all hold:
- its trade count is at least `trade_count_multiple` x the baseline's;
- its market buys (taker-buy trades grouped by buyer_order_id, or on a tape without order ids by their
  `rush_window_ms` instant: a venue prints one order's fills at once) are at least `min_buy_orders` and
  `buy_order_multiple` x the baseline's, and enough of them are **rush orders**, filled as >= 2 trades (a market
  buy sweeping the book, La Morgia et al.'s strongest pump feature): `min_rush_orders` in a one-chunk window,
  where the crowd's simultaneity is itself the evidence; `min_buy_orders` in a longer one, where it is not (one
  algorithm working a large order, or a rally's buyers arriving one by one, send dozens of market buys over a
  few minutes; a rushing crowd's market buys, each sized by what its member wants, sweep a thin book);
- where accounts exist, the buyers are a crowd: at least `min_distinct_buyers` distinct buyer ids.
The crowd's size floors are the same for every window length: a crowd is a crowd however fast it arrives. At
each chunk the shortest spike window is kept (the tightest evidence). Spike windows of a symbol less than
`merge_gap_minutes` apart are one **event**, kept only when one of its windows is **sudden**: its trade count at
least `onset_multiple` x the pace of the `reference_minutes` before it (a crowd arrives at a signal; a market busy
for half an hour already is a rally or news, not a rush). The event runs from the first chunk of its windows
whose market buys alone reach buy_order_multiple x the ordinary rate (else its first window's start) to its
last window's end. It is a pump-and-dump when its price path has both halves:
- **pump**: the highest trade price from the event's start to `peak_window_minutes` later (or its last spike
  window's end) is at least `min_price_rise` above the reference price (median trade price of the
  `reference_minutes` before the event, else the last trade before it);
- **dump**: within `dump_horizon_minutes` after the peak, the settled price (the median trade price of the
  `settle_minutes` up to a trade, from settle_minutes after the peak on) falls to a level giving back at least
  `min_retrace_share` of the rise; the lowest settled price is the one judged, so a collapse is seen whether it
  takes ten minutes or two hours (else the last trade after the peak, when the day ends sooner). A news-driven
  rally keeps most of its gain: it fails here however many buyers it had. Only the day's trades are seen, so a
  pump late in the day is judged on the trades left in the day.
The finding's window runs from the event's first trade to the collapse: the first trade after the peak at or
below peak - min_retrace_share x (peak - reference) (the horizon's end if none).

Where accounts exist, the finding names the **organisers**: accounts that accumulated in the
`accumulation_hours` before the event (net bought, at least `min_accumulation_directionality` of their gross
volume: a market maker's two-way flow is not accumulation) and sold at least `min_sold_into_share` of that
position between the event's start and the collapse; at most `max_named_accounts`, ranked by the quantity
both accumulated and sold into the rise. Their sales lead the evidence, then the spike's buys.

Score (0..1): each of the five measures (trade-count multiple, buy-order multiple, rush orders of the busiest
window, price rise, retrace share) divided by its threshold is an odds ratio >= 1 on a finding; their geometric
mean g gives score = g / (1 + g): 0.5 for an event just at every threshold, 0.9 when they are ~9x beyond.

All of it is group_bys over chunks and hours, rolling sums and medians by time, cumulative sums and as-of joins
that find each event's few windows of its symbol's trades (`pump_windows`, `pump_parts`): linear in the tape, no pairwise
comparison of trades and no loop over rows.
"""
from __future__ import annotations

import math

import polars as pl
from pydantic import Field, model_validator

from surveillance_pipeline.contract import Trade, Pattern
from surveillance_pipeline.detectors.base import DetectionInputs, DetectorSettings, Finding, empty_findings, findings_frame
from surveillance_pipeline.detectors.pump_parts import event_accounts, event_evidence, price_paths
from surveillance_pipeline.detectors.pump_windows import SYMBOL, build_tape, chunk_counts, events_of, spike_windows


class PumpAndDumpSettings(DetectorSettings):
    """Thresholds of the pump-and-dump detector (market level; works on anonymous tapes)."""

    chunk_seconds: int = Field(
        60, ge=1, le=3_600,
        description="length of the chunks the tape is cut into, the grid of the burst windows and their shortest "
                    "length: a Telegram pump's crowd arrives within seconds of the signal and the peak comes in "
                    "the first minute or two (La Morgia et al. score 5 to 25 s chunks); a minute holds such a rush "
                    "whole without diluting it in ordinary trading")
    burst_windows_minutes: tuple[float, ...] = Field(
        (1.0, 3.0, 5.0), min_length=1,
        description="lengths of the windows the crowd's burst is measured over, each against its own baseline "
                    "(multiples of chunk_seconds, at most an hour): a big channel's crowd buys within the first "
                    "minute (1), a small or slow crowd, or one answering a repeated announcement, over the first "
                    "few minutes (3, 5: the pump phase lasts minutes, Xu & Livshits, La Morgia et al.); longer "
                    "windows would measure a busy hour or a news rally, not a coordinated rush")
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
        description="least market buys in a spike window, whatever its length: a pump's crowd is dozens of "
                    "buyers, and a crowd does not grow with the window it is measured over; on a pair that trades "
                    "once a minute, one order sweeping ten price levels is a large multiple of trades but a single "
                    "buyer")
    trade_count_multiple: float = Field(
        10.0, gt=1,
        description="least ratio of a spike window's trade count to the symbol's ordinary count over as long a "
                    "window (the baseline per chunk times its chunks): an order of magnitude, far beyond a busy "
                    "few minutes (a few x) while a pump's first minutes run at hundreds of times its pair's "
                    "ordinary rate")
    buy_order_multiple: float = Field(
        10.0, gt=1,
        description="least ratio of a spike window's buy orders (market buys) to their ordinary count over as "
                    "long a window: the rush is buying, not just trading; same order of magnitude as the trade "
                    "count")
    onset_multiple: float = Field(
        10.0, ge=1,
        description="an event needs a sudden window: its trade count at least this many times the pace of the "
                    "reference_minutes before it (scaled to the window's length). A crowd told to buy at one "
                    "instant lands on a quiet market and multiplies its pace by an order of magnitude, even over "
                    "a half hour warmed by the organisers' last buys; a market busy for a while already (a rally "
                    "building, news spreading) was at most a few times slower just before. Later windows of the "
                    "event (the crowd's waves) need not be sudden")
    min_rush_orders: int = Field(
        5, ge=1,
        description="least rush orders in a one-chunk spike window: market buys filled as >= 2 trades at one "
                    "instant (they sweep the book, La Morgia et al.'s strongest pump feature); an ordinary minute "
                    "on a thin pair has none or one, a handful means several buyers lifting every ask at once. In "
                    "a longer window min_buy_orders of the market buys must be rush orders: without the crowd's "
                    "simultaneity, its sweeps are what tell a rush from one algorithm slicing a large order or a "
                    "rally's buyers arriving one by one")
    rush_window_ms: int = Field(
        1, ge=1, le=1_000,
        description="on a tape without buyer order ids, taker-buy trades within one such window (epoch-aligned) "
                    "are one market buy: a venue prints one order's fills with one timestamp, to the ms")
    min_distinct_buyers: int = Field(
        10, ge=1,
        description="where accounts exist, least distinct buyers in a spike window: a pump recruits a crowd; a "
                    "few accounts trading a lot is another typology (excessive trading, wash trading)")
    merge_gap_minutes: float = Field(
        30.0, ge=0, le=24 * 60,
        description="spike windows of one symbol closer than this are one event: a pump's crowd comes in waves "
                    "over its first minutes and the announcement is often repeated; one event, one finding")
    reference_minutes: float = Field(
        30.0, gt=0, le=24 * 60,
        description="the reference price is the median trade price over this many minutes before the event: "
                    "the price the crowd was told to buy at, robust to one odd print")
    peak_window_minutes: float = Field(
        10.0, gt=0, le=24 * 60,
        description="the peak is sought from the event's start to this many minutes later (or the last spike "
                    "window's end): a pump is rapid, its top comes within minutes of the signal, not hours")
    min_price_rise: float = Field(
        0.05, gt=0, le=100,
        description="least rise of the peak over the reference price, as a fraction (0.05 = 5 %): a pump "
                    "inflates the price (SEC, CFTC); pump groups target tens of percent, while a minute's "
                    "ordinary move on a listed pair is well under a percent; 5 % keeps failed, small pumps in")
    dump_horizon_minutes: float = Field(
        180.0, gt=0, le=24 * 60,
        description="the dump is sought within this many minutes after the peak: pumped prices collapse within "
                    "minutes to a few hours once the rush stops (Kamps & Kleinberg; Xu & Livshits; La Morgia et "
                    "al.): organisers sell into the rise at once, the crowd's late holders sell over the next "
                    "hour or two. Three hours sees a slow collapse through; longer, and the market's own moves "
                    "of a thin pair over half a day would pass for a dump")
    settle_minutes: float = Field(
        15.0, gt=0, le=24 * 60,
        description="the settled price is the median trade price over this many minutes up to a trade (whole "
                    "windows only, from this long after the peak); the lowest within the horizon is judged (the "
                    "last trade after the peak when the day ends sooner): where the price settled, not one dip "
                    "or one panicked sale")
    min_retrace_share: float = Field(
        0.5, gt=0, le=1,
        description="least share of the rise given back by the settled price: at or below peak - share x "
                    "(peak - reference). A pump collapses towards where it started; a news rally keeps most of "
                    "its gain (sustained). More than half given back is the boundary between a move that "
                    "reversed and one that held")
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

    @model_validator(mode="after")
    def _windows_on_the_grid(self) -> PumpAndDumpSettings:
        for minutes in self.burst_windows_minutes:
            chunks = minutes * 60 / self.chunk_seconds
            if not (0 < minutes <= 60 and abs(chunks - round(chunks)) < 1e-9):
                raise ValueError(f"burst window {minutes:g} min is not a whole number of {self.chunk_seconds} s "
                                 "chunks within an hour")
        return self


def detect_pump_and_dump(inputs: DetectionInputs, settings: PumpAndDumpSettings) -> pl.DataFrame:
    """One finding per pump-and-dump event of the day (see the module docstring)."""
    if not settings.enabled or inputs.trades.is_empty():
        return empty_findings()
    # Whether buyers are counted is a property of each symbol's tape: an anonymous symbol is judged as one even
    # when another symbol of the day names its accounts (and so the result never depends on the company).
    named = set(inputs.trades.filter(pl.col(Trade.BUYER_ID).is_not_null() | pl.col(Trade.SELLER_ID).is_not_null())
                .get_column(Trade.SYMBOL).unique().to_list())
    every = set(inputs.trades.get_column(Trade.SYMBOL).unique().to_list())
    if named and named != every:
        parts = []
        for group in (sorted(named), sorted(every - named)):
            mine = pl.col(Trade.SYMBOL).is_in(group)
            parts.append(detect_pump_and_dump(DetectionInputs(
                trades=inputs.trades.filter(mine), orders=inputs.orders.filter(pl.col(Trade.SYMBOL).is_in(group)),
                history=inputs.history.filter(mine), day=inputs.day), settings))
        return pl.concat(parts).sort(Finding.WINDOW_START, Finding.SYMBOL)
    tape = build_tape(inputs, settings)
    chunks = chunk_counts(tape, settings)
    events = events_of(spike_windows(chunks, tape, settings, inputs.has_accounts), chunks, settings)
    if events.is_empty():
        return empty_findings()
    events = price_paths(events, tape, settings).filter(
        (pl.col("rise") >= settings.min_price_rise) & (pl.col("retrace") >= settings.min_retrace_share))
    if events.is_empty():
        return empty_findings()
    accounts = event_accounts(events, tape, settings) if inputs.has_accounts else None
    events = events.join(event_evidence(events, tape, accounts, settings), on="event", how="left")
    named: dict[int, dict] = {}
    if accounts is not None:
        summary = accounts.group_by("event").agg(pl.col("account").sort().alias("accounts"), pl.col("sold").sum())
        named = {row["event"]: row for row in summary.iter_rows(named=True)}
    # a few events a day: one dict each
    rows = [_finding(event, named.get(event["event"]), settings) for event in events.iter_rows(named=True)]
    return findings_frame(rows).sort(Finding.WINDOW_START, Finding.SYMBOL)


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
    window = f"{event['busiest_window_minutes']:g} min"
    after = (event["settled_time"] - event["peak_time"]).total_seconds() / 60
    onset = (f"at its onset up to {event['onset_multiple']:.0f}x the pace" if event["onset_multiple"] is not None
             else "at its onset after no trade") + f" of the {settings.reference_minutes:g} min before"
    explanation = (
        f"{event['spike_trades']:,} trades in {minutes:g} min from {event['start']:%Y-%m-%d %H:%M} UTC, the "
        f"busiest {window} {event['trade_multiple']:.0f}x the usual {event['baseline_trades']:.2f} (median hour "
        f"of the previous {settings.baseline_hours:g} h), {onset}; {event['spike_buy_orders']:,} market buys (busiest "
        f"{window} {event['buy_order_multiple']:.0f}x the usual), {event['spike_rush_orders']:,} of them rush "
        f"orders; price rose {event['rise']:.1%} from {event['reference_price']:.8g} to {event['peak_price']:.8g} "
        f"by {event['peak_time']:%H:%M:%S}, then gave back {event['retrace']:.0%} of the rise (settled at "
        f"{event['post_price']:.8g} {after:.0f} min after the peak)"
    )
    metrics = {key: event[key] for key in (
        "spike_windows", "spike_trades", "spike_buy_orders", "spike_rush_orders", "trade_multiple",
        "buy_order_multiple", "baseline_trades", "baseline_buy_orders", "busiest_window_minutes", "max_rush_orders",
        "reference_price", "peak_price", "post_price", "rise", "retrace", "post_trades", "onset_multiple")}
    metrics["baseline_hours_seen"] = event["baseline_hours_seen"]
    metrics["peak_time"] = event["peak_time"].isoformat()
    metrics["settled_time"] = event["settled_time"].isoformat()
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
