"""Volume features: how big an account's fills are, how much it trades, and how that compares.

Sizes are notionals in the quote currency (`Fill.NOTIONAL`, price x quantity). A self-trade gives the
account two fills (its buy and its sell), so it counts on both sides of its volume, as any fill does.
Daily volumes are per UTC day. The look-back window is `features.lookback_days` days ending on the day
(the day included); history fills outside it are ignored. Every std is the sample std (ddof=1).
"""
from __future__ import annotations


import polars as pl

from surveillance_pipeline.features.base import ACCOUNT, FeatureInputs, FeatureSpec, Fill

GROUP = "volume"
FEATURES = [
    FeatureSpec("trade_size_mean", "quote currency", "mean notional of the account's fills of the day", GROUP),
    FeatureSpec("trade_size_median", "quote currency", "median notional of the account's fills of the day",
                GROUP),
    FeatureSpec("trade_size_std", "quote currency", "sample std (ddof=1) of the notionals of the account's fills "
                "of the day; null with a single fill", GROUP),
    FeatureSpec("volume_day", "quote currency", "sum of the notionals of the account's fills of the day "
                "(a self-trade counts on both sides)", GROUP),
    FeatureSpec("volume_percentile", "share", "percentile rank of volume_day among the accounts with fills "
                "that day, in (0, 1]: the share of those accounts whose volume_day is at most this account's "
                "(rank with ties 'max' / number of accounts); 1 = the largest", GROUP),
    FeatureSpec("volume_spike_ratio", "ratio", "volume_day / the account's mean daily volume over the days of "
                "the look-back window before the day on which it had fills; null without such a day", GROUP),
    FeatureSpec("volume_consistency", "score 0-1", "1 / (1 + CV) of the account's daily volumes over the "
                "features.lookback_days days ending on the day, days without fills counted as 0; CV = sample "
                "std (ddof=1) / mean; 1 = the same volume every day; null when lookback_days is 1 or the "
                "window's volume is 0", GROUP),
]

_VOLUME = "volume"
_DAY = "trade_date"


def _daily(fills: pl.LazyFrame) -> pl.LazyFrame:
    """Volume per account and UTC day."""
    return fills.group_by(ACCOUNT, pl.col(Fill.TIMESTAMP).dt.date().alias(_DAY)).agg(
        pl.col(Fill.NOTIONAL).sum().alias(_VOLUME))


def _sizes(inputs: FeatureInputs) -> pl.LazyFrame:
    notional = pl.col(Fill.NOTIONAL)
    day = inputs.fills.group_by(ACCOUNT).agg(
        notional.mean().alias("trade_size_mean"),
        notional.median().alias("trade_size_median"),
        notional.std(ddof=1).alias("trade_size_std"),
        notional.sum().alias("volume_day"),
    )
    return day.with_columns(
        (pl.col("volume_day").rank("max") / pl.len()).alias("volume_percentile"))


def _history_mean(history_days: pl.LazyFrame) -> pl.LazyFrame:
    return history_days.group_by(ACCOUNT).agg(pl.col(_VOLUME).mean().alias("history_mean"))


def _consistency(all_days: pl.LazyFrame, days: int) -> pl.LazyFrame:
    """1 / (1 + CV) over `days` daily volumes of which the missing ones are 0, without materialising zeros.

    mean = S / days; sum of squared deviations = sum over active days of (v - mean)^2
    + (days - active days) * mean^2; sample variance = that / (days - 1).
    """
    volume = pl.col(_VOLUME)
    mean = volume.sum() / days
    squares = ((volume - mean) ** 2).sum() + (days - pl.len()) * mean ** 2
    if days < 2:
        std = pl.lit(None, pl.Float64)
    else:
        std = (squares / (days - 1)).sqrt()
    cv = pl.when(mean > 0).then(std / mean)
    return all_days.group_by(ACCOUNT).agg((1 / (1 + cv)).alias("volume_consistency"))


def volume_features(inputs: FeatureInputs) -> pl.LazyFrame:
    columns = [ACCOUNT, Fill.TIMESTAMP, Fill.NOTIONAL]
    history_fills = inputs.history_fills.select(columns)
    history = _history_mean(_daily(history_fills))
    window_days = _daily(pl.concat([history_fills, inputs.fills.select(columns)]))
    consistency = _consistency(window_days, inputs.settings.lookback_days)
    sizes = _sizes(inputs)
    both = sizes.join(history, on=ACCOUNT, how="left").join(consistency, on=ACCOUNT, how="left")
    mean = pl.col("history_mean")
    return both.select(
        ACCOUNT,
        pl.col("trade_size_mean"),
        pl.col("trade_size_median"),
        pl.col("trade_size_std"),
        pl.col("volume_day"),
        pl.col("volume_percentile"),
        pl.when(mean > 0).then(pl.col("volume_day") / mean).alias("volume_spike_ratio"),
        pl.col("volume_consistency"),
    )
