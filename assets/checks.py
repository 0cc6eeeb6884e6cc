"""Checks on the validated day, evaluated inside the validated assets (so they see exactly that partition):
blocking contract checks on the typed rows, a WARN when the rejected share exceeds the configured level."""
import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

from surveillance_pipeline.contract import (
    ORDER_KEY,
    ORDER_REQUIRED,
    ORDER_SCHEMA,
    TRADE_KEY,
    TRADE_REQUIRED,
    TRADE_SCHEMA,
)
from surveillance_pipeline.ingest.presets import TRADES
from surveillance_pipeline.quality import contract_problems, rejected_share

_CONTRACT = {TRADES: (TRADE_SCHEMA, TRADE_REQUIRED, TRADE_KEY), "orders": (ORDER_SCHEMA, ORDER_REQUIRED, ORDER_KEY)}


def check_specs(kind: str) -> list[AssetCheckSpec]:
    singular = kind[:-1]
    return [
        AssetCheckSpec(f"validated_{kind}_check", asset=f"validated_{kind}", blocking=True,
                       description="Contract columns and dtypes, non-null required fields, unique keys."),
        AssetCheckSpec(f"{singular}_rejects_ratio_check", asset=f"{singular}_rejects",
                       description="WARN when the share of rejected rows exceeds ingest.rejected_ratio_warn."),
    ]


def contract_check(kind: str, frame: pl.DataFrame | pl.LazyFrame) -> AssetCheckResult:
    problems = contract_problems(frame, *_CONTRACT[kind])
    return AssetCheckResult(check_name=f"validated_{kind}_check", asset_key=f"validated_{kind}",
                            passed=not problems, metadata={"problems": "; ".join(problems) or "none"})


def rejects_ratio_check(kind: str, accepted_rows: int, rejects: pl.DataFrame | pl.LazyFrame,
                        limit: float) -> AssetCheckResult:
    share, rejected = rejected_share(accepted_rows, rejects)
    return AssetCheckResult(check_name=f"{kind[:-1]}_rejects_ratio_check", asset_key=f"{kind[:-1]}_rejects",
                            passed=share <= limit, severity=AssetCheckSeverity.WARN,
                            metadata={"rejected_share": round(share, 6), "rejected_rows": rejected, "limit": limit})
