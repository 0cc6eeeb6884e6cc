"""Asset checks on the validated day: blocking schema and key checks, a WARN on the rejected share."""

import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, AssetIn, asset_check

from resources.settings import SettingsResource
from surveillance_pipeline.contract import ORDER_KEY, ORDER_REQUIRED, ORDER_SCHEMA, TRADE_KEY, TRADE_REQUIRED, TRADE_SCHEMA
from surveillance_pipeline.quality import contract_problems, rejected_share


def _contract_result(frame: pl.DataFrame, schema, required, key) -> AssetCheckResult:
    problems = contract_problems(frame, schema, required, key)
    return AssetCheckResult(passed=not problems, metadata={"rows": frame.height, "problems": "; ".join(problems) or "none"})


@asset_check(asset="validated_trades", blocking=True, description="Contract columns and dtypes, non-null keys, unique (symbol, trade_id).")
def validated_trades_check(validated_trades: pl.DataFrame) -> AssetCheckResult:
    return _contract_result(validated_trades, TRADE_SCHEMA, TRADE_REQUIRED, TRADE_KEY)


@asset_check(asset="validated_orders", blocking=True, description="Contract columns and dtypes, non-null keys, unique order events.")
def validated_orders_check(validated_orders: pl.DataFrame) -> AssetCheckResult:
    return _contract_result(validated_orders, ORDER_SCHEMA, ORDER_REQUIRED, ORDER_KEY)


def _ratio_result(accepted: pl.DataFrame, rejects: pl.DataFrame, settings: SettingsResource) -> AssetCheckResult:
    limit = settings.get().ingest.rejected_ratio_warn
    share, rejected = rejected_share(accepted.height, rejects)
    return AssetCheckResult(passed=share <= limit, severity=AssetCheckSeverity.WARN, metadata={
        "rejected_share": round(share, 6), "rejected_rows": rejected, "limit": limit})


@asset_check(asset="trade_rejects", additional_ins={"validated_trades": AssetIn()},
             description="WARN when the share of rejected trade rows exceeds ingest.rejected_ratio_warn.")
def trade_rejects_ratio_check(trade_rejects: pl.DataFrame, validated_trades: pl.DataFrame,
                              settings: SettingsResource) -> AssetCheckResult:
    return _ratio_result(validated_trades, trade_rejects, settings)


@asset_check(asset="order_rejects", additional_ins={"validated_orders": AssetIn()},
             description="WARN when the share of rejected order rows exceeds ingest.rejected_ratio_warn.")
def order_rejects_ratio_check(order_rejects: pl.DataFrame, validated_orders: pl.DataFrame,
                              settings: SettingsResource) -> AssetCheckResult:
    return _ratio_result(validated_orders, order_rejects, settings)
