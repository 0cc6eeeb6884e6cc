"""Drift between two days of a feature table: more missing values, or values outside yesterday's range."""
from __future__ import annotations

import polars as pl

MISSING_SHARE_INCREASE = 0.25  # absolute rise in a feature's share of missing values that is worth a look


def drift_problems(current: pl.DataFrame, previous: pl.DataFrame | None, features: list[str]) -> list[str]:
    """Features whose missing share rose by more than MISSING_SHARE_INCREASE, or whose median left the
    previous day's 1st–99th percentile range. Empty when there is no previous day to compare with."""
    if previous is None or previous.height == 0 or current.height == 0:
        return []
    problems = []
    for name in features:
        now, before = current.get_column(name).cast(pl.Float64), previous.get_column(name).cast(pl.Float64)
        now_missing = (now.is_null() | now.is_nan()).mean()
        before_missing = (before.is_null() | before.is_nan()).mean()
        if now_missing - before_missing > MISSING_SHARE_INCREASE:
            problems.append(f"{name}: missing {before_missing:.0%} -> {now_missing:.0%}")
            continue
        now, before = now.drop_nans().drop_nulls(), before.drop_nans().drop_nulls()
        if now.len() == 0 or before.len() == 0:
            continue
        low, high, median = before.quantile(0.01), before.quantile(0.99), now.median()
        if low is not None and high is not None and not (low <= median <= high):
            problems.append(f"{name}: median {median:.4g} outside the previous day's 1-99% range "
                            f"[{low:.4g}, {high:.4g}]")
    return problems
