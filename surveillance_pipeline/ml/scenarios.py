"""Labelled training data from generated scenarios: what `surveillance train` learns from on a fresh install."""
from __future__ import annotations

from datetime import timedelta

import polars as pl

from surveillance_pipeline.config import FeatureSettings
from surveillance_pipeline.contract import Trade
from surveillance_pipeline.features.account import account_feature_table
from surveillance_pipeline.features.base import FeatureInputs
from surveillance_pipeline.scenarios import ScenarioSpec, generate_scenario


def feature_days(trades: pl.DataFrame, orders: pl.DataFrame, settings: FeatureSettings) -> pl.DataFrame:
    """Account features of every UTC day in `trades`, each with its look-back (as the daily asset computes)."""
    stamp = pl.col(Trade.TIMESTAMP).dt.date()
    days = sorted(trades.select(stamp.unique()).to_series().to_list())
    lazy_trades, lazy_orders = trades.lazy(), orders.lazy()
    tables = []
    for day in days:
        first = day - timedelta(days=settings.lookback_days - 1)
        inputs = FeatureInputs(day=day, trades=lazy_trades.filter(stamp == day),
                               orders=lazy_orders.filter(stamp == day),
                               history=lazy_trades.filter((stamp >= first) & (stamp < day)), settings=settings)
        tables.append(account_feature_table(inputs))
    return pl.concat(tables)


def scenario_training_data(days: int, seed: int, accounts: int, trades_per_day: int,
                           settings: FeatureSettings) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(account features of every generated day, the episode labels)."""
    scenario = generate_scenario(ScenarioSpec(days=days, seed=seed, accounts=accounts,
                                              trades_per_day=trades_per_day))
    return feature_days(scenario.trades, scenario.orders, settings), scenario.labels
