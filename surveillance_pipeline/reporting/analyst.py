"""The three analyst reports, each written as PDF + CSV + JSON from polars frames (no Dagster here).

    daily_summary(out_dir, first_day, last_day, alerts, scores, activity, *, top_n=15)
    account_profile(out_dir, account_id, first_day, last_day, alerts, features, scores, activity_account,
                    *, feature_units=None)
    pattern_analysis(out_dir, first_day, last_day, alerts, *, labels=None)

Each returns {"pdf", "csv", "json"} -> path. Periods are inclusive UTC days; alerts belong to a period by
their `date` partition column. See `analyst_common` for the input columns.
"""
from __future__ import annotations

from surveillance_pipeline.reporting.account import account_profile, feature_comparison
from surveillance_pipeline.reporting.daily import daily_summary, score_statistics
from surveillance_pipeline.reporting.pattern import pattern_analysis, pattern_statistics

__all__ = ["account_profile", "daily_summary", "feature_comparison", "pattern_analysis", "pattern_statistics",
           "score_statistics"]
