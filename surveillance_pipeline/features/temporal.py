"""Temporal features: when an account trades (hours, weekdays, sessions) and how its trades are spaced.

The unit counted here is the account's *execution*, not the raw fill:
- a self-trade (buyer = seller) gives the account two fills of one trade at one instant; they are one
  execution (the buy fill is kept), so a self-trade neither counts twice nor makes a 0-second gap;
- fills of one order at one instant (an order matched against several resting orders) are one execution;
  fills without an order id are executions of their own.
Fills of different orders at the same instant stay separate executions, 0 s apart.
Hours and weekdays are UTC. The look-back window is `features.lookback_days` days ending on the day (the day
included); history fills outside it are ignored. Gaps are between the account's consecutive executions of the
day across all its symbols; their std is the sample std (ddof=1), so CV and burstiness need 2 gaps.
"""
from __future__ import annotations

import polars as pl

from surveillance_pipeline.features.base import ACCOUNT, FeatureInputs, FeatureSpec, Fill, shannon_entropy
from surveillance_pipeline.features.volume import window_history

GROUP = "temporal"
FEATURES = [
    FeatureSpec("hour_entropy", "bits", "Shannon entropy of the account's executions by UTC hour of day over the "
                "look-back window (the day included): 0 = one hour only, log2(24) = 4.58 = evenly spread", GROUP),
    FeatureSpec("weekday_entropy", "bits", "Shannon entropy of the account's executions by UTC day of week over "
                "the look-back window (the day included): 0 = one weekday, at most log2(7) = 2.81", GROUP),
    FeatureSpec("session_concentration", "share", "largest share of the day's executions falling in one of the "
                "features.session_hours sessions (UTC hours [start, end), wrapping midnight when start > end); "
                "null when no session is configured", GROUP),
    FeatureSpec("inter_trade_mean_s", "s", "mean gap between the account's consecutive executions of the day "
                "(all symbols); null with a single execution", GROUP),
    FeatureSpec("inter_trade_cv", "ratio", "sample std (ddof=1) / mean of those gaps; null with fewer than 2 "
                "gaps or a mean gap of 0", GROUP),
    FeatureSpec("burstiness", "score -1..1", "(std - mean) / (std + mean) of those gaps (Goh and Barabasi 2008, "
                "sample std): -1 regular, 0 Poisson-like, toward 1 bursty; null with fewer than 2 gaps or all "
                "gaps 0", GROUP),
    FeatureSpec("clustered_share", "share", "share of the account's executions of the day that came within "
                "features.cluster_seconds (inclusive) of its previous execution; the first execution of the "
                "day counts as not clustered", GROUP),
]

_COUNT = "n"


def executions(fills: pl.LazyFrame) -> pl.LazyFrame:
    """`account_id`, `timestamp` of the account's executions (see the module docstring)."""
    self_sell = ((pl.col(Fill.COUNTERPARTY) == pl.col(ACCOUNT)) & (pl.col(Fill.DIRECTION) == -1)).fill_null(False)
    kept = fills.filter(~self_sell).select(ACCOUNT, Fill.TIMESTAMP, Fill.ORDER_ID)
    order = pl.col(Fill.ORDER_ID)
    merged = kept.filter(order.is_not_null()).unique(subset=[ACCOUNT, Fill.ORDER_ID, Fill.TIMESTAMP])
    return pl.concat([merged, kept.filter(order.is_null())]).select(ACCOUNT, Fill.TIMESTAMP)


def _entropy(window: pl.LazyFrame, bucket: pl.Expr, name: str) -> pl.LazyFrame:
    return (
        window.group_by(ACCOUNT, bucket.alias("bucket")).agg(pl.len().alias(_COUNT))
        .group_by(ACCOUNT).agg(shannon_entropy(pl.col(_COUNT)).abs().alias(name))  # abs: 0.0, not -0.0
    )


def _in_session(hour: pl.Expr, start: int, end: int) -> pl.Expr:
    if start <= end:
        return (hour >= start) & (hour < end)
    return (hour >= start) | (hour < end)


def _day_timing(day: pl.LazyFrame, inputs: FeatureInputs) -> pl.LazyFrame:
    ts = pl.col(Fill.TIMESTAMP)
    hour = ts.dt.hour()
    sessions = [_in_session(hour, start, end).sum() for start, end in inputs.settings.session_hours.values()]
    largest = pl.max_horizontal(sessions) if sessions else pl.lit(None, pl.UInt32)
    gaps = ts.sort().diff().dt.total_microseconds() / 1_000_000
    return day.group_by(ACCOUNT).agg(
        (largest / pl.len()).alias("session_concentration"),
        gaps.mean().alias("gap_mean"),
        gaps.std(ddof=1).alias("gap_std"),
        gaps.count().alias("gaps"),
        (gaps <= inputs.settings.cluster_seconds).sum().alias("clustered"),
        pl.len().alias(_COUNT),
    )


def temporal_features(inputs: FeatureInputs) -> pl.LazyFrame:
    day = executions(inputs.fills)
    window = pl.concat([executions(window_history(inputs)), day])
    ts = pl.col(Fill.TIMESTAMP)
    timing = _day_timing(day, inputs)
    both = (
        timing.join(_entropy(window, ts.dt.hour(), "hour_entropy"), on=ACCOUNT, how="left")
        .join(_entropy(window, ts.dt.weekday(), "weekday_entropy"), on=ACCOUNT, how="left")
    )
    mean, std = pl.col("gap_mean"), pl.col("gap_std")
    two_gaps = pl.col("gaps") >= 2
    return both.select(
        ACCOUNT,
        pl.col("hour_entropy"),
        pl.col("weekday_entropy"),
        pl.col("session_concentration").cast(pl.Float64),
        mean.alias("inter_trade_mean_s"),
        pl.when(two_gaps & (mean > 0)).then(std / mean).alias("inter_trade_cv"),
        pl.when(two_gaps & (std + mean > 0)).then((std - mean) / (std + mean)).alias("burstiness"),
        (pl.col("clustered") / pl.col(_COUNT)).alias("clustered_share"),
    )
