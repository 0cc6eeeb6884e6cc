"""Rule-based detections per UTC day: every enabled rule detector on the day's validated trades and orders."""
from datetime import date

import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetIn,
    BackfillPolicy,
    MetadataValue,
    Output,
    TimeWindowPartitionMapping,
    asset,
)

from assets.partitions import daily_partitions
from resources.io_managers import ALLOW_MISSING, PARTITION_COLUMN
from resources.settings import SettingsResource
from surveillance_pipeline.config import load_settings
from surveillance_pipeline.contract import Alert
from surveillance_pipeline.detectors.day import detect_day
from surveillance_pipeline.detectors.rules import RuleBasedDetector

DATE = "date"
HISTORY_DAYS = load_settings().detectors.history_days
# The day's trades and the days before it (baselines such as a pump's usual volume); absent days are skipped.
TRADES_WITH_HISTORY = AssetIn("validated_trades", metadata={ALLOW_MISSING: True},
                              partition_mapping=TimeWindowPartitionMapping(start_offset=-HISTORY_DAYS))


@asset(partitions_def=daily_partitions, group_name="detections", kinds={"polars"},
       backfill_policy=BackfillPolicy.single_run(), metadata={PARTITION_COLUMN: DATE},
       ins={"validated_trades": TRADES_WITH_HISTORY, "validated_orders": AssetIn()})
def rule_detections(context: AssetExecutionContext, validated_trades: pl.LazyFrame,
                    validated_orders: pl.LazyFrame, settings: SettingsResource):
    """One alert per abuse episode found by the rule detectors (wash, circular, pump-and-dump, spoofing,
    layering, quote stuffing, excessive trading), each with its explanation, evidence and thresholds."""
    cfg = settings.get()
    detector = RuleBasedDetector(cfg.detectors)
    days, counts = [], {}
    for key in context.partition_keys:
        day = date.fromisoformat(key)
        run = detect_day(detector, day, validated_trades, validated_orders)
        days.append(run.alerts.with_columns(pl.lit(day).alias(DATE)))
        for pattern, count in run.counts().items():
            counts[pattern] = counts.get(pattern, 0) + count
        context.log.info(f"{day}: {run.alerts.height} alerts from {len(run.findings)} findings "
                         f"({', '.join(run.ran)})")
    table = pl.concat(days)
    by_risk = dict(table.group_by(Alert.RISK_LEVEL).len().iter_rows()) if table.height else {}
    yield Output(table, metadata={
        "alerts": table.height,
        "by_pattern": MetadataValue.json(counts),
        "by_risk_level": MetadataValue.json(by_risk),
    })
