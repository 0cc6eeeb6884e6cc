"""The analyst's alerts per UTC day: rule alerts and model scores combined by the detection engine, linked to
earlier days, stored in the database and exported as CSV and JSON."""
from datetime import date

import polars as pl
from dagster import AssetExecutionContext, AssetIn, BackfillPolicy, MetadataValue, Output, asset

from assets.partitions import daily_partitions
from resources.database import DatabaseResource
from resources.io_managers import PARTITION_COLUMN
from resources.settings import SettingsResource
from surveillance_pipeline.contract import Trade
from surveillance_pipeline.engine.service import alerts_for_day
from surveillance_pipeline.features.base import DATE


@asset(partitions_def=daily_partitions, group_name="alerts", kinds={"polars", "sqlalchemy"},
       backfill_policy=BackfillPolicy.single_run(), metadata={PARTITION_COLUMN: DATE},
       ins={"rule_detections": AssetIn(), "model_scores": AssetIn(), "account_features": AssetIn(),
            "validated_trades": AssetIn()})
def alerts(context: AssetExecutionContext, rule_detections: pl.DataFrame, model_scores: pl.DataFrame,
           account_features: pl.DataFrame, validated_trades: pl.LazyFrame, settings: SettingsResource,
           database: DatabaseResource):
    """One explained alert per episode: the rule alerts, raised in risk when the models flag the same accounts
    or another pattern's rule fires on them, plus model-only leads (`ml_anomaly`) under strict conditions;
    re-raised episodes link to the earlier alert. Stored in the database, exported to paths.alerts_dir/<day>/."""
    cfg = settings.get()
    db = database.get()
    days, totals = [], {"alerts": 0, "by_pattern": {}, "by_risk_level": {}, "model_only": 0, "re_raised": 0}
    for key in sorted(context.partition_keys):  # in order: a day links to the days before it
        day = date.fromisoformat(key)
        on_day = pl.col(DATE).cast(pl.String) == key
        result = alerts_for_day(
            day, rule_detections.filter(on_day), model_scores.filter(on_day) if DATE in model_scores.columns
            else model_scores, account_features.filter(on_day),
            validated_trades.filter(pl.col(Trade.TIMESTAMP).dt.date() == day).collect(),
            cfg.engine, db, cfg.resolve(cfg.paths.alerts_dir) / key)
        counts = result.counts()
        context.log.info(f"{key}: {counts['alerts']} alerts {counts['by_pattern']} (stored: {result.stored}) "
                         f"-> {result.files[0]}")
        for name in ("alerts", "model_only", "re_raised"):
            totals[name] += counts[name]
        for name in ("by_pattern", "by_risk_level"):
            for label, n in counts[name].items():
                totals[name][label] = totals[name].get(label, 0) + n
        days.append(result.alerts)
    table = pl.concat(days)
    yield Output(table, metadata={
        "alerts": totals["alerts"], "by_pattern": MetadataValue.json(totals["by_pattern"]),
        "by_risk_level": MetadataValue.json(totals["by_risk_level"]), "model_only": totals["model_only"],
        "re_raised": totals["re_raised"],
        "exports": str(cfg.resolve(cfg.paths.alerts_dir))})
