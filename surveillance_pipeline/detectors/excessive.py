"""Excessive trading: accounts trading more often than configured limits allow (an HFT flag, lower risk).

Trade frequency alone is no abuse: it marks automated trading that a venue wants to know about (MiFID II
art. 17 and RTS 6 ask venues to identify algorithmic and high-frequency traders; its "high message intraday
rate" is counted per instrument and across instruments, as here), and churning shows as it. So the score stays
modest and the finding says how far the account is above the limit and above its peers.

An account's trades are those it initiated: the taker side of each trade (a market or marketable order is
the account's decision to trade now; fills of its resting quotes are others' decisions), or, with
`count_passive_fills`, every trade it is buyer or seller of (a self-trade once). Over the day's trades, per
account and symbol:
- **hourly**: its trades in any rolling hour (the hour ending at each of its trades) reach
  `max_trades_per_hour`;
- **daily per symbol**: its trades of the day in the symbol reach `max_trades_per_day_per_symbol`;
- **daily overall**: its trades of the day across all symbols reach `max_trades_per_day`.
One finding per account x symbol x day where any limit is reached; the overall limit alone is reported on the
account's busiest symbol (one finding, not one per symbol it touched). Accounts in `exempt_accounts` (a
venue's registered market makers) are skipped. The window is the busy period: from the first trade of the
first hour over the limit to the last trade of the last one (the account's whole day in the symbol for the
daily limits). The explanation gives the rate and its percentile among the accounts trading the symbol that
day (among all accounts for the overall limit).

Score: r / (1 + r) x `max_score`, r = the largest ratio of a measured rate to its limit: max_score / 2 at the
limit, approaching max_score far above it.

Rolling counts, group_bys and joins over the day's trades; windows do not reach into the previous day.
"""
from __future__ import annotations

from datetime import timedelta

import polars as pl
from pydantic import Field

from surveillance_pipeline.contract import Pattern, Side, Trade
from surveillance_pipeline.detectors.base import DetectionInputs, DetectorSettings, Finding, empty_findings, findings_frame

ACCOUNT, SYMBOL, TS, TRADE_ID = "account", Trade.SYMBOL, Trade.TIMESTAMP, Trade.TRADE_ID
HOUR = timedelta(hours=1)


class ExcessiveTradingSettings(DetectorSettings):
    """Trade-frequency limits of the excessive-trading (HFT) flag."""

    max_trades_per_hour: int = Field(
        600, ge=1,
        description="trades of one account in one symbol in any rolling hour that raise the flag: one every 6 s "
                    "for an hour is beyond a person placing, checking and confirming orders by hand; it takes an "
                    "algorithm")
    max_trades_per_day_per_symbol: int = Field(
        10_000, ge=1,
        description="trades of one account in one symbol in a day that raise the flag: one every 9 s around the "
                    "clock, a pace only an algorithm keeps")
    max_trades_per_day: int = Field(
        20_000, ge=1,
        description="trades of one account across all symbols in a day that raise the flag (reported on its "
                    "busiest symbol): twice the per-symbol limit, as MiFID II's message-rate test doubles its "
                    "per-instrument rate for all instruments")
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
        300, ge=1, le=100_000, description="evidence cap: the trades of the account's busiest hour")


def detect_excessive_trading(inputs: DetectionInputs, settings: ExcessiveTradingSettings) -> pl.DataFrame:
    """One finding per account x symbol of the day above a trade-frequency limit (see the module docstring)."""
    if not settings.enabled or inputs.trades.is_empty() or not inputs.has_accounts:
        return empty_findings()
    legs = _legs(inputs.trades, settings)
    per_symbol = _per_symbol(legs)
    flagged = _flagged(per_symbol, settings)
    if flagged.is_empty():
        return empty_findings()
    flagged = flagged.join(_busy_windows(legs, flagged, settings), on=[ACCOUNT, SYMBOL], how="left")
    rows = [_finding(row, settings) for row in flagged.iter_rows(named=True)]
    return findings_frame(rows).sort(Finding.WINDOW_START, Finding.SYMBOL)


def _legs(trades: pl.DataFrame, settings: ExcessiveTradingSettings) -> pl.DataFrame:
    """One row per trade an account counts for (its taker trades; with passive fills, both sides, a self-trade
    once), with the account's count over the rolling hour ending at it."""
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
        pl.col(ACCOUNT).is_not_null() & ~pl.col(ACCOUNT).is_in(list(settings.exempt_accounts)))
    return legs.sort(ACCOUNT, SYMBOL, TS).with_columns(pl.lit(1, pl.Int64).alias("hour_trades")).with_columns(
        pl.col("hour_trades").rolling_sum_by(TS, "1h").over(ACCOUNT, SYMBOL))


def _per_symbol(legs: pl.DataFrame) -> pl.DataFrame:
    """Per account x symbol: day count, busiest hour, and their percentiles among peers."""
    def percentile(column: str, over: str | None) -> pl.Expr:
        rank = pl.col(column).rank("min") - 1
        peers = pl.len() - 1
        if over is not None:
            rank, peers = rank.over(over), peers.over(over)
        return pl.when(peers > 0).then(rank / peers).otherwise(1.0)

    per_symbol = legs.group_by(ACCOUNT, SYMBOL).agg(
        pl.len().alias("day_trades"),
        pl.col("hour_trades").max().alias("peak_hour_trades"),
        pl.col(TS).get(pl.col("hour_trades").arg_max()).alias("peak_hour_end"),
        pl.col(TS).min().alias("first_trade"),
        pl.col(TS).max().alias("last_trade"),
    ).with_columns(
        percentile("peak_hour_trades", SYMBOL).alias("peak_hour_percentile"),
        percentile("day_trades", SYMBOL).alias("day_percentile"),
        pl.len().over(SYMBOL).alias("symbol_accounts"),
        pl.col("day_trades").median().over(SYMBOL).alias("symbol_median_day_trades"),
        pl.col("peak_hour_trades").median().over(SYMBOL).alias("symbol_median_peak_hour"),
    )
    overall = per_symbol.group_by(ACCOUNT).agg(
        pl.col("day_trades").sum().alias("all_trades"),
        pl.len().alias("symbols"),
        pl.col(SYMBOL).sort_by("day_trades", descending=True).first().alias("busiest_symbol"),
    ).with_columns(
        percentile("all_trades", None).alias("all_percentile"),
        pl.len().alias("all_accounts"),
        pl.col("all_trades").median().alias("all_median"),
    )
    return per_symbol.join(overall, on=ACCOUNT)


def _flagged(per_symbol: pl.DataFrame, settings: ExcessiveTradingSettings) -> pl.DataFrame:
    hourly = pl.col("peak_hour_trades") / settings.max_trades_per_hour
    daily = pl.col("day_trades") / settings.max_trades_per_day_per_symbol
    overall = pl.when(pl.col(SYMBOL) == pl.col("busiest_symbol")).then(
        pl.col("all_trades") / settings.max_trades_per_day).otherwise(0.0)
    return per_symbol.with_columns(
        hourly.alias("hour_ratio"), daily.alias("day_ratio"), overall.alias("all_ratio"),
    ).filter((pl.col("hour_ratio") >= 1) | (pl.col("day_ratio") >= 1) | (pl.col("all_ratio") >= 1))


def _busy_windows(legs: pl.DataFrame, flagged: pl.DataFrame, settings: ExcessiveTradingSettings) -> pl.DataFrame:
    """Per flagged account x symbol: the span of its hours over the limit (null when none is) and the ids of
    its busiest hour's trades."""
    legs = legs.join(flagged.select(ACCOUNT, SYMBOL, "peak_hour_end"), on=[ACCOUNT, SYMBOL])
    over = pl.col("hour_trades") >= settings.max_trades_per_hour
    spans = legs.group_by(ACCOUNT, SYMBOL).agg(
        (pl.col(TS).filter(over).min() - HOUR).alias("_from"), pl.col(TS).filter(over).max().alias("busy_end"))
    busiest = (pl.col(TS) > pl.col("peak_hour_end") - HOUR) & (pl.col(TS) <= pl.col("peak_hour_end"))
    return legs.join(spans, on=[ACCOUNT, SYMBOL]).group_by(ACCOUNT, SYMBOL).agg(
        pl.col(TS).filter(pl.col(TS) > pl.col("_from")).min().alias("busy_start"),
        pl.col("busy_end").first(),
        pl.col(TRADE_ID).filter(busiest).head(settings.max_evidence_trades).alias("evidence_ids"),
    )


def _finding(row: dict, settings: ExcessiveTradingSettings) -> dict:
    parts = []
    if row["hour_ratio"] >= 1:
        parts.append(f"{row['peak_hour_trades']:,} trades in one hour (to {row['peak_hour_end']:%H:%M} UTC), "
                     f"{row['hour_ratio']:.1f}x the {settings.max_trades_per_hour:,} per hour limit, busier than "
                     f"{row['peak_hour_percentile']:.0%} of the other {row['symbol_accounts'] - 1:,} accounts "
                     f"trading the symbol that day (their median busiest hour: {row['symbol_median_peak_hour']:g})")
    if row["day_ratio"] >= 1:
        parts.append(f"{row['day_trades']:,} trades in the day, {row['day_ratio']:.1f}x the "
                     f"{settings.max_trades_per_day_per_symbol:,} per day limit, more than "
                     f"{row['day_percentile']:.0%} of the other {row['symbol_accounts'] - 1:,} accounts (median "
                     f"{row['symbol_median_day_trades']:g})")
    if row["all_ratio"] >= 1:
        parts.append(f"{row['all_trades']:,} trades across {row['symbols']} symbol(s) in the day, "
                     f"{row['all_ratio']:.1f}x the {settings.max_trades_per_day:,} per day limit, more than "
                     f"{row['all_percentile']:.0%} of the other {row['all_accounts'] - 1:,} accounts (median "
                     f"{row['all_median']:g})")
    ratio = max(row["hour_ratio"], row["day_ratio"], row["all_ratio"])
    hourly_span = row["busy_start"] is not None and row["hour_ratio"] >= 1
    metrics = {key: row[key] for key in (
        "day_trades", "peak_hour_trades", "peak_hour_percentile", "day_percentile", "symbol_accounts",
        "all_trades", "all_percentile", "symbols", "hour_ratio", "day_ratio", "all_ratio")}
    return {
        Finding.PATTERN: Pattern.EXCESSIVE_TRADING.value, Finding.SYMBOL: row[SYMBOL],
        Finding.USER_IDS: [row[ACCOUNT]],
        Finding.WINDOW_START: row["busy_start"] if hourly_span else row["first_trade"],
        Finding.WINDOW_END: row["busy_end"] if hourly_span else row["last_trade"],
        Finding.SCORE: settings.max_score * ratio / (1.0 + ratio),
        Finding.EXPLANATION: f"{row[ACCOUNT]} in {row[SYMBOL]}: " + "; ".join(parts),
        Finding.EVIDENCE: [f"trade:{trade_id}" for trade_id in row["evidence_ids"] or []],
        Finding.METRICS: metrics,
    }
