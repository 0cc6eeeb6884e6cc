"""Excessive trading: accounts trading more often than configured limits allow (an HFT flag, lower risk).

Trade frequency alone is no abuse: it marks automated trading that a venue wants to know about (MiFID II
art. 17 and RTS 6 ask venues to identify algorithmic and high-frequency traders; its "high message intraday
rate" is counted per instrument and across instruments, as here), and churning shows as it. So the score stays
modest and the finding says how far the account is above the limit and above its peers.

An account's trades are those it initiated: the taker side of each trade (a market or marketable order is
the account's decision to trade now; fills of its resting quotes are others' decisions), or, with
`count_passive_fills`, every trade it is buyer or seller of (a self-trade once). The limits are on the pace of
one account's decisions, which is a **rate**: an algorithm running at 2,000 trades an hour for a quarter of an
hour is automated though it never fills an hour. Over the day's trades, per account:
- **hourly**: its trades in any rolling hour (the hour ending at each of its trades) reach
  `max_trades_per_hour` in one symbol, or `max_trades_per_hour_all_symbols` across its symbols;
- **short window**: its trades in any rolling `short_window_minutes`, scaled to an hourly pace, reach
  `max_short_window_rate` in one symbol, or `max_short_window_rate_all_symbols` across its symbols;
- **daily per symbol**: its trades of the day in the symbol reach `max_trades_per_day_per_symbol`;
- **daily overall**: its trades of the day across all symbols reach `max_trades_per_day`.
The cross-symbol limits bound one decision maker's pace however many markets it spreads it over, so they equal
the per-symbol ones by default. One finding per account x symbol x day where any limit is reached; a
cross-symbol limit is reported on each symbol holding at least `min_symbol_share` of the account's trades in its
busiest window over that limit (the day, for the daily limit): each market's part of the episode, with its own
trades as evidence; a stray trade in another market is not one. Accounts in `exempt_accounts` (a venue's registered market makers) are skipped. The window is the busy
period: from the first trade of the symbol in the first window over a rate limit to its last trade in the last
one (the account's whole day in the symbol for the daily limits). The explanation gives the rates, their limits
and the account's percentile among the accounts trading the symbol that day (among all accounts for the overall
limits).

Score: r / (1 + r) x `max_score`, r = the largest ratio of a measured rate to its limit: max_score / 2 at the
limit, approaching max_score far above it.

Rolling counts by time, group_bys and joins over the day's trades; windows do not reach into the previous day.
"""
from __future__ import annotations

from datetime import timedelta

import polars as pl
from pydantic import Field

from surveillance_pipeline.contract import Pattern, Side, Trade
from surveillance_pipeline.detectors.base import DetectionInputs, DetectorSettings, Finding, empty_findings, findings_frame

ACCOUNT, SYMBOL, TS, TRADE_ID = "account", Trade.SYMBOL, Trade.TIMESTAMP, Trade.TRADE_ID
HOUR = timedelta(hours=1)
# the rate measures: (column prefix, over all symbols?, window is the short one?)
MEASURES = (("hour", False, False), ("short", False, True), ("all_hour", True, False), ("all_short", True, True))


class ExcessiveTradingSettings(DetectorSettings):
    """Trade-frequency limits of the excessive-trading (HFT) flag."""

    max_trades_per_hour: int = Field(
        600, ge=1,
        description="trades of one account in one symbol in any rolling hour that raise the flag: one every 6 s "
                    "for an hour is beyond a person placing, checking and confirming orders by hand; it takes an "
                    "algorithm")
    max_trades_per_hour_all_symbols: int = Field(
        600, ge=1,
        description="trades of one account across all its symbols in any rolling hour that raise the flag: the "
                    "limit is on one decision maker's pace, and a person's hands are no faster for having three "
                    "markets on screen, so it equals the per-symbol limit")
    short_window_minutes: float = Field(
        15.0, gt=0, le=60,
        description="length of the rolling window the short-window rate is measured over (its count scaled to an "
                    "hourly pace): a quarter of an hour is a sustained session, not a burst of clicks, yet short "
                    "enough that an algorithm running for 15-30 minutes is seen at its pace, which an hour's count "
                    "dilutes")
    max_short_window_rate: int = Field(
        1_200, ge=1,
        description="hourly pace of one account in one symbol over any rolling short window that raises the flag: "
                    "one trade every 3 s for a quarter of an hour (300 trades). A person can click faster than the "
                    "hourly limit for a few minutes, not for a quarter hour, hence twice the hourly limit; an "
                    "account steady at the hourly limit (150 +- 12 trades a quarter hour) never reaches it by chance")
    max_short_window_rate_all_symbols: int = Field(
        1_200, ge=1,
        description="the same pace across all the account's symbols: one decision maker's pace, whatever the "
                    "number of markets (as max_trades_per_hour_all_symbols)")
    max_trades_per_day_per_symbol: int = Field(
        10_000, ge=1,
        description="trades of one account in one symbol in a day that raise the flag: one every 9 s around the "
                    "clock, a pace only an algorithm keeps")
    max_trades_per_day: int = Field(
        10_000, ge=1,
        description="trades of one account across all its symbols in a day that raise the flag: one decision "
                    "maker's pace, so the per-symbol limit (MiFID II's message-rate test doubles its per-instrument "
                    "rate for all instruments, but it counts a firm's messages, many algorithms and desks; here "
                    "one account decides); twice it would be 833 an hour around the clock, a pace the hourly "
                    "cross-symbol limit already flags")
    min_symbol_share: float = Field(
        0.1, gt=0, le=1,
        description="a cross-symbol limit is reported on each symbol holding at least this share of the account's "
                    "trades in its busiest window over the limit (the day, for the daily limit): a real part of "
                    "the pace (a tenth), not a stray trade in another market")
    count_passive_fills: bool = Field(
        False,
        description="whether fills of an account's resting orders count too: by default an account's trades are "
                    "the ones it initiated (the taker side), its own decisions to trade; a market maker's quotes "
                    "are filled at others' initiative. Turn on to flag high-frequency quoting as well")
    exempt_accounts: tuple[str, ...] = Field(
        (), description="accounts never flagged: a venue's registered market makers, whose quoting is expected "
                        "to trade this often")
    max_score: float = Field(
        0.6, gt=0, le=1,
        description="ceiling of the score: trading often is a flag for review, not evidence of abuse, so it "
                    "stays below the scores of the manipulation typologies")
    max_evidence_trades: int = Field(
        300, ge=1, le=100_000, description="evidence cap: the trades of the account's busiest window in the symbol")


def detect_excessive_trading(inputs: DetectionInputs, settings: ExcessiveTradingSettings) -> pl.DataFrame:
    """One finding per account x symbol of the day above a trade-frequency limit (see the module docstring)."""
    if not settings.enabled or inputs.trades.is_empty() or not inputs.has_accounts:
        return empty_findings()
    legs = _legs(inputs.trades, settings)
    flagged = _flagged(_per_symbol(legs, settings), settings)
    if flagged.is_empty():
        return empty_findings()
    flagged = flagged.join(_busy_windows(legs, flagged, settings), on=[ACCOUNT, SYMBOL], how="left")
    # a few flagged accounts a day: one dict each
    rows = [_finding(row, settings) for row in flagged.iter_rows(named=True)]
    return findings_frame(rows).sort(Finding.WINDOW_START, Finding.SYMBOL)


def _spans(settings: ExcessiveTradingSettings) -> dict[bool, timedelta]:
    return {False: HOUR, True: timedelta(minutes=settings.short_window_minutes)}


def _limits(settings: ExcessiveTradingSettings) -> dict[str, float]:
    """Per measure: the count over its window that reaches its limit."""
    short = settings.short_window_minutes / 60
    return {"hour": settings.max_trades_per_hour, "short": settings.max_short_window_rate * short,
            "all_hour": settings.max_trades_per_hour_all_symbols,
            "all_short": settings.max_short_window_rate_all_symbols * short}


def _legs(trades: pl.DataFrame, settings: ExcessiveTradingSettings) -> pl.DataFrame:
    """One row per trade an account counts for (its taker trades; with passive fills, both sides, a self-trade
    once), with the account's counts over the rolling windows ending at it: in the symbol and across symbols."""
    columns = [TRADE_ID, SYMBOL, TS]
    if settings.count_passive_fills:
        buyers = trades.select(*columns, pl.col(Trade.BUYER_ID).alias(ACCOUNT))
        sellers = trades.filter(pl.col(Trade.SELLER_ID).ne_missing(pl.col(Trade.BUYER_ID))).select(
            *columns, pl.col(Trade.SELLER_ID).alias(ACCOUNT))
        legs = pl.concat([buyers, sellers])
    else:
        taker = pl.when(pl.col(Trade.SIDE) == Side.BUY.value).then(Trade.BUYER_ID).otherwise(Trade.SELLER_ID)
        legs = trades.select(*columns, taker.alias(ACCOUNT))
    legs = legs.filter(
        pl.col(ACCOUNT).is_not_null() & ~pl.col(ACCOUNT).is_in(list(settings.exempt_accounts))
    ).with_columns(pl.lit(1, pl.Int64).alias("_one"))
    spans = _spans(settings)

    def counts(across: bool) -> list[pl.Expr]:
        keys = [ACCOUNT] if across else [ACCOUNT, SYMBOL]
        prefix = "all_" if across else ""
        return [pl.col("_one").rolling_sum_by(TS, spans[short]).over(keys).alias(f"{prefix}{name}_trades")
                for name, short in (("hour", False), ("short", True))]

    legs = legs.sort(ACCOUNT, TS).with_columns(*counts(True))
    return legs.sort(ACCOUNT, SYMBOL, TS).with_columns(*counts(False)).drop("_one")


def _per_symbol(legs: pl.DataFrame, settings: ExcessiveTradingSettings) -> pl.DataFrame:
    """Per account x symbol: day count, the peak of each rate measure and when it ended, percentiles among peers,
    and the account's cross-symbol figures with the symbol's share of its busiest cross-symbol window."""
    def percentile(column: str, over: str | None) -> pl.Expr:
        rank = pl.col(column).rank("min") - 1
        peers = pl.len() - 1
        if over is not None:
            rank, peers = rank.over(over), peers.over(over)
        return pl.when(peers > 0).then(rank / peers).otherwise(1.0)

    limits = _limits(settings)
    peaks = [expr for name, _, _ in MEASURES for expr in (
        pl.col(f"{name}_trades").max().alias(f"peak_{name}_trades"),
        pl.col(TS).get(pl.col(f"{name}_trades").arg_max()).alias(f"peak_{name}_end"))]
    per_symbol = legs.group_by(ACCOUNT, SYMBOL).agg(
        pl.len().alias("day_trades"), pl.col(TS).min().alias("first_trade"), pl.col(TS).max().alias("last_trade"),
        *peaks[:4],
    ).with_columns(
        percentile("peak_hour_trades", SYMBOL).alias("peak_hour_percentile"),
        percentile("peak_short_trades", SYMBOL).alias("peak_short_percentile"),
        percentile("day_trades", SYMBOL).alias("day_percentile"),
        pl.len().over(SYMBOL).alias("symbol_accounts"),
        pl.col("day_trades").median().over(SYMBOL).alias("symbol_median_day_trades"),
        pl.col("peak_hour_trades").median().over(SYMBOL).alias("symbol_median_peak_hour"),
    )
    overall = per_symbol.group_by(ACCOUNT).agg(
        pl.col("day_trades").sum().alias("all_trades"),
        pl.len().alias("symbols"),
    ).join(legs.group_by(ACCOUNT).agg(*peaks[4:]), on=ACCOUNT).with_columns(
        percentile("all_trades", None).alias("all_percentile"),
        percentile("peak_all_short_trades", None).alias("all_short_percentile"),
        pl.len().alias("all_accounts"),
        pl.col("all_trades").median().alias("all_median"),
        *((pl.col(f"peak_{name}_trades") / limits[name]).alias(f"{name}_ratio") for name in ("all_hour", "all_short")),
    ).with_columns(
        # the busiest cross-symbol window: the measure furthest over its limit
        pl.when(pl.col("all_short_ratio") > pl.col("all_hour_ratio"))
        .then(pl.struct(end=pl.col("peak_all_short_end"), short=True))
        .otherwise(pl.struct(end=pl.col("peak_all_hour_end"), short=False)).alias("_all_peak"),
    )
    spans = _spans(settings)
    span = pl.when(pl.col("_all_peak").struct.field("short")).then(pl.lit(spans[True])).otherwise(pl.lit(spans[False]))
    end = pl.col("_all_peak").struct.field("end")
    in_peak = (pl.col(TS) > end - span) & (pl.col(TS) <= end)
    shares = (
        legs.select(ACCOUNT, SYMBOL, TS).join(overall.select(ACCOUNT, "_all_peak"), on=ACCOUNT)
        .group_by(ACCOUNT, SYMBOL).agg(in_peak.sum().alias("_in_peak"))
        .with_columns((pl.col("_in_peak") / pl.col("_in_peak").sum().over(ACCOUNT)).fill_nan(0.0).alias("symbol_share"))
        .drop("_in_peak")
    )
    return per_symbol.join(overall, on=ACCOUNT).join(shares, on=[ACCOUNT, SYMBOL])


def _flagged(per_symbol: pl.DataFrame, settings: ExcessiveTradingSettings) -> pl.DataFrame:
    limits = _limits(settings)
    across = pl.col("symbol_share") >= settings.min_symbol_share
    overall = pl.when(pl.col("day_trades") >= settings.min_symbol_share * pl.col("all_trades")).then(
        pl.col("all_trades") / settings.max_trades_per_day).otherwise(0.0)
    ratios = ["hour_ratio", "short_ratio", "day_ratio", "all_ratio", "all_hour_ratio", "all_short_ratio"]
    return per_symbol.with_columns(
        (pl.col("peak_hour_trades") / limits["hour"]).alias("hour_ratio"),
        (pl.col("peak_short_trades") / limits["short"]).alias("short_ratio"),
        (pl.col("day_trades") / settings.max_trades_per_day_per_symbol).alias("day_ratio"),
        overall.alias("all_ratio"),
        # the cross-symbol rates count on the symbols that carried them
        *(pl.when(across).then(pl.col(c)).otherwise(0.0).alias(c) for c in ("all_hour_ratio", "all_short_ratio")),
    ).filter(pl.any_horizontal(pl.col(c) >= 1 for c in ratios))


def _busy_windows(legs: pl.DataFrame, flagged: pl.DataFrame, settings: ExcessiveTradingSettings) -> pl.DataFrame:
    """Per flagged account x symbol: the span of its windows over a rate limit (null when only a daily limit is
    reached), clipped to the symbol's trades, and the ids of its trades in its busiest window."""
    limits, spans = _limits(settings), _spans(settings)
    flags = flagged.select(ACCOUNT, SYMBOL, *(pl.col(f"{name}_ratio") >= 1 for name, _, _ in MEASURES))
    # windows over a limit: (account, symbol they are reported on, start, end) from each measure that fired
    windows = []
    for name, across, short in MEASURES:  # the four rate measures
        over = legs.filter(pl.col(f"{name}_trades") >= limits[name]).select(
            ACCOUNT, *([] if across else [SYMBOL]), (pl.col(TS) - spans[short]).alias("_from"), pl.col(TS).alias("_to"))
        on = [ACCOUNT] if across else [ACCOUNT, SYMBOL]
        windows.append(over.join(flags.filter(pl.col(f"{name}_ratio")).select(ACCOUNT, SYMBOL), on=on)
                       .select(ACCOUNT, SYMBOL, "_from", "_to"))
    spans_over = pl.concat(windows).group_by(ACCOUNT, SYMBOL).agg(pl.col("_from").min(), pl.col("_to").max())
    # the busiest window reported: the measure furthest over its limit
    ratio_names = [f"{name}_ratio" for name, _, _ in MEASURES]
    best = flagged.select(
        ACCOUNT, SYMBOL,
        pl.concat_list(*ratio_names).list.arg_max().alias("_best"),
        pl.concat_list(*(f"peak_{name}_end" for name, _, _ in MEASURES)).alias("_ends"),
    ).select(ACCOUNT, SYMBOL, pl.col("_ends").list.get(pl.col("_best")).alias("_peak_end"),
             pl.col("_best").is_in([1, 3]).alias("_peak_short"))
    peak_span = pl.when(pl.col("_peak_short")).then(pl.lit(spans[True])).otherwise(pl.lit(spans[False]))
    busiest = (pl.col(TS) > pl.col("_peak_end") - peak_span) & (pl.col(TS) <= pl.col("_peak_end"))
    return (
        legs.join(flagged.select(ACCOUNT, SYMBOL), on=[ACCOUNT, SYMBOL])
        .join(spans_over, on=[ACCOUNT, SYMBOL], how="left").join(best, on=[ACCOUNT, SYMBOL])
        .group_by(ACCOUNT, SYMBOL).agg(
            pl.col(TS).filter(pl.col(TS) > pl.col("_from")).min().alias("busy_start"),
            pl.col(TS).filter(pl.col(TS) <= pl.col("_to")).max().alias("busy_end"),
            pl.col(TRADE_ID).filter(busiest).head(settings.max_evidence_trades).alias("evidence_ids"),
        )
    )


def _finding(row: dict, settings: ExcessiveTradingSettings) -> dict:
    parts = []
    minutes = f"{settings.short_window_minutes:g} min"
    peers = f"of the other {row['symbol_accounts'] - 1:,} accounts trading the symbol that day"
    if row["hour_ratio"] >= 1:
        parts.append(f"{row['peak_hour_trades']:,} trades in one hour (to {row['peak_hour_end']:%H:%M} UTC), "
                     f"{row['hour_ratio']:.1f}x the {settings.max_trades_per_hour:,} per hour limit, busier than "
                     f"{row['peak_hour_percentile']:.0%} {peers} (their median busiest hour: "
                     f"{row['symbol_median_peak_hour']:g})")
    if row["short_ratio"] >= 1:
        pace = row["peak_short_trades"] * 60 / settings.short_window_minutes
        parts.append(f"{row['peak_short_trades']:,} trades in {minutes} (to {row['peak_short_end']:%H:%M} UTC), "
                     f"{pace:,.0f} per hour, {row['short_ratio']:.1f}x the {settings.max_short_window_rate:,} per "
                     f"hour limit over {minutes}, busier than {row['peak_short_percentile']:.0%} {peers}")
    across = f"across {row['symbols']} symbol(s)"
    # a cross-symbol rate whose busiest window holds this symbol alone repeats the per-symbol one
    alone = row["symbol_share"] >= 1
    cross = []
    if row["all_hour_ratio"] >= 1 and not (alone and row["hour_ratio"] >= 1):
        cross.append(f"{row['peak_all_hour_trades']:,} trades {across} in one hour (to "
                     f"{row['peak_all_hour_end']:%H:%M} UTC), {row['all_hour_ratio']:.1f}x the "
                     f"{settings.max_trades_per_hour_all_symbols:,} per hour limit")
    if row["all_short_ratio"] >= 1 and not (alone and row["short_ratio"] >= 1):
        pace = row["peak_all_short_trades"] * 60 / settings.short_window_minutes
        cross.append(f"{row['peak_all_short_trades']:,} trades {across} in {minutes} (to "
                     f"{row['peak_all_short_end']:%H:%M} UTC), {pace:,.0f} per hour, {row['all_short_ratio']:.1f}x "
                     f"the {settings.max_short_window_rate_all_symbols:,} per hour limit over {minutes}, busier than "
                     f"{row['all_short_percentile']:.0%} of the other {row['all_accounts'] - 1:,} accounts")
    if cross:
        parts += cross[:-1] + [f"{cross[-1]} ({row['symbol_share']:.0%} of the busiest such window's trades in "
                               "this symbol)"]
    if row["day_ratio"] >= 1:
        parts.append(f"{row['day_trades']:,} trades in the day, {row['day_ratio']:.1f}x the "
                     f"{settings.max_trades_per_day_per_symbol:,} per day limit, more than "
                     f"{row['day_percentile']:.0%} of the other {row['symbol_accounts'] - 1:,} accounts (median "
                     f"{row['symbol_median_day_trades']:g})")
    if row["all_ratio"] >= 1:
        parts.append(f"{row['all_trades']:,} trades {across} in the day, "
                     f"{row['all_ratio']:.1f}x the {settings.max_trades_per_day:,} per day limit, more than "
                     f"{row['all_percentile']:.0%} of the other {row['all_accounts'] - 1:,} accounts (median "
                     f"{row['all_median']:g}); {row['day_trades'] / row['all_trades']:.0%} of them in this symbol")
    ratios = ("hour_ratio", "short_ratio", "all_hour_ratio", "all_short_ratio", "day_ratio", "all_ratio")
    ratio = max(row[key] for key in ratios)
    rate_span = row["busy_start"] is not None and max(row[key] for key in ratios[:4]) >= 1
    metrics = {key: row[key] for key in (
        "day_trades", "peak_hour_trades", "peak_short_trades", "peak_hour_percentile", "peak_short_percentile",
        "day_percentile", "symbol_accounts", "all_trades", "all_percentile", "symbols", "peak_all_hour_trades",
        "peak_all_short_trades", "symbol_share", *ratios)}
    return {
        Finding.PATTERN: Pattern.EXCESSIVE_TRADING.value, Finding.SYMBOL: row[SYMBOL],
        Finding.USER_IDS: [row[ACCOUNT]],
        Finding.WINDOW_START: row["busy_start"] if rate_span else row["first_trade"],
        Finding.WINDOW_END: row["busy_end"] if rate_span else row["last_trade"],
        Finding.SCORE: settings.max_score * ratio / (1.0 + ratio),
        Finding.EXPLANATION: f"{row[ACCOUNT]} in {row[SYMBOL]}: " + "; ".join(parts),
        Finding.EVIDENCE: [f"trade:{trade_id}" for trade_id in row["evidence_ids"] or []],
        Finding.METRICS: metrics,
    }
