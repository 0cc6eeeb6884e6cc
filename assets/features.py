"""Account and market features per UTC day, from the validated trades (with their look-back) and orders."""
from datetime import date, timedelta

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    BackfillPolicy,
    Output,
    TimeWindowPartitionMapping,
    asset,
)

from assets.partitions import daily_partitions
from resources.io_managers import ALLOW_MISSING, PARTITION_COLUMN
from resources.settings import SettingsResource
from surveillance_pipeline.config import load_settings
from surveillance_pipeline.contract import Trade
from surveillance_pipeline.features.account import ACCOUNT_FEATURES, account_feature_table
from surveillance_pipeline.features.base import DATE, FeatureInputs
from surveillance_pipeline.features.drift import drift_problems
from surveillance_pipeline.features.market import MARKET_FEATURES, market_features as market_feature_frame

LOOKBACK_DAYS = load_settings().features.lookback_days
# The day's trades and the look-back days before it; days before the data began are simply absent.
TRADES_WITH_LOOKBACK = AssetIn("validated_trades", metadata={ALLOW_MISSING: True},
                               partition_mapping=TimeWindowPartitionMapping(start_offset=-(LOOKBACK_DAYS - 1)))


def _days(context: AssetExecutionContext) -> list[date]:
    return [date.fromisoformat(key) for key in context.partition_keys]


def _inputs(day: date, trades: pl.LazyFrame, orders: pl.LazyFrame, settings) -> FeatureInputs:
    stamp = pl.col(Trade.TIMESTAMP).dt.date()
    first = day - timedelta(days=settings.features.lookback_days - 1)
    return FeatureInputs(day=day, trades=trades.filter(stamp == day), orders=orders.filter(stamp == day),
                         history=trades.filter((stamp >= first) & (stamp < day)), settings=settings.features)


def _previous(settings, asset_name: str, day: date) -> pl.DataFrame | None:
    path = settings.resolve(settings.paths.warehouse_dir) / asset_name / f"{day - timedelta(days=1)}.parquet"
    return pl.read_parquet(path) if path.exists() else None


def _drift_check(name: str, tables: dict[date, pl.DataFrame], features: list[str], settings,
                 view=lambda frame: frame) -> AssetCheckResult:
    problems = []
    for day, table in tables.items():
        previous = tables.get(day - timedelta(days=1))
        if previous is None:
            previous = _previous(settings, name, day)
        previous = view(previous) if previous is not None else None
        problems += [f"{day}: {p}" for p in drift_problems(view(table), previous, features)]
    return AssetCheckResult(check_name=f"{name}_drift_check", asset_key=name, passed=not problems,
                            severity=AssetCheckSeverity.WARN,
                            metadata={"problems": "\n".join(problems[:50]) or "none", "count": len(problems)})


def _drift_spec(name: str) -> AssetCheckSpec:
    return AssetCheckSpec(f"{name}_drift_check", asset=name,
                          description="WARN when a feature's missing share jumps or its median leaves the previous "
                                      "day's 1-99% range.")


@asset(partitions_def=daily_partitions, group_name="features", kinds={"polars"},
       backfill_policy=BackfillPolicy.single_run(), metadata={PARTITION_COLUMN: DATE},
       ins={"validated_trades": TRADES_WITH_LOOKBACK, "validated_orders": AssetIn()},
       check_specs=[_drift_spec("account_features")])
def account_features(context: AssetExecutionContext, validated_trades: pl.LazyFrame,
                     validated_orders: pl.LazyFrame, settings: SettingsResource):
    """One row per account and day: frequency, volume, timing, price impact, behaviour, counterparty and
    order-intent features (docs/FEATURES.md)."""
    cfg = settings.get()
    tables = {day: account_feature_table(_inputs(day, validated_trades, validated_orders, cfg))
              for day in _days(context)}
    yield _drift_check("account_features", tables, [f.name for f in ACCOUNT_FEATURES], cfg)
    table = pl.concat(tables.values())
    yield Output(table, metadata={"accounts": table.height, "features": len(ACCOUNT_FEATURES)})


@asset(partitions_def=daily_partitions, group_name="features", kinds={"polars"},
       backfill_policy=BackfillPolicy.single_run(), metadata={PARTITION_COLUMN: DATE},
       ins={"validated_trades": AssetIn(), "validated_orders": AssetIn()},
       check_specs=[_drift_spec("market_features")])
def market_features(context: AssetExecutionContext, validated_trades: pl.LazyFrame,
                    validated_orders: pl.LazyFrame, settings: SettingsResource):
    """Per symbol and 1-second / 1-minute / 1-hour bar: activity, returns, volatility, buyers, rush orders
    and spread; anonymous tapes included."""
    cfg = settings.get()
    tables = {}
    for day in _days(context):
        frame = market_feature_frame(_inputs(day, validated_trades, validated_orders, cfg)).collect()
        tables[day] = frame.with_columns(pl.col("bar_start").dt.date().alias(DATE))
    yield _drift_check("market_features", tables, [f.name for f in MARKET_FEATURES], cfg,
                       view=lambda frame: frame.filter(pl.col("bar") == "1m"))
    table = pl.concat(tables.values())
    yield Output(table, metadata={"bars": table.height, "symbols": table.get_column("symbol").n_unique()})
