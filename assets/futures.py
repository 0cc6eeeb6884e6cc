"""Futures features and futures alerts per UTC day, from the market data the collection stored."""
from datetime import date, timedelta

import polars as pl
from dagster import AssetDep, AssetExecutionContext, BackfillPolicy, MetadataValue, Output, asset

from assets.partitions import daily_partitions
from resources.database import DatabaseResource
from resources.io_managers import PARTITION_COLUMN
from resources.settings import SettingsResource
from surveillance_pipeline.market.futures_alerts import futures_alerts_for_day
from surveillance_pipeline.market.futures_features import futures_features as futures_feature_table
from surveillance_pipeline.market.stored import stored_market_tables


@asset(partitions_def=daily_partitions, group_name="market", kinds={"polars"},
       backfill_policy=BackfillPolicy.single_run(), metadata={PARTITION_COLUMN: "date"},
       deps=[AssetDep("futures_market_data")])
def futures_features(context: AssetExecutionContext, settings: SettingsResource, database: DatabaseResource):
    """Per futures market and day: funding (level, deviation, volatility, trend), premium, basis, mark-index
    deviation, liquidations and cascade risk, open-interest change, farming indicator, leverage."""
    frames = []
    for key in sorted(context.partition_keys):
        day = date.fromisoformat(key)
        tables = stored_market_tables(database.get(), day - timedelta(days=7), day)
        frames.append(futures_feature_table(tables, day))
    table = pl.concat(frames)
    return Output(table, metadata={"markets": table.height})


@asset(partitions_def=daily_partitions, group_name="market", kinds={"polars", "sqlalchemy"},
       backfill_policy=BackfillPolicy.single_run(), metadata={PARTITION_COLUMN: "date"},
       deps=[AssetDep("futures_market_data")])
def futures_detections(context: AssetExecutionContext, settings: SettingsResource, database: DatabaseResource):
    """The futures detectors on the stored day (with the day before as baseline): market-level alerts stored
    with the day's other alerts (linked to earlier days like them) and exported to
    paths.alerts_dir/<day>/futures/."""
    cfg = settings.get()
    frames, counts = [], {}
    for key in sorted(context.partition_keys):
        day = date.fromisoformat(key)
        result = futures_alerts_for_day(database.get(), day, cfg.engine.link_days,
                                        cfg.resolve(cfg.paths.alerts_dir) / key / "futures")
        for pattern, n in result.group_by("pattern").len().iter_rows() if result.height else []:
            counts[pattern] = counts.get(pattern, 0) + n
        frames.append(result)
        context.log.info(f"{key}: {result.height} futures alerts")
    table = pl.concat(frames, how="vertical_relaxed")
    return Output(table, metadata={"alerts": table.height, "by_pattern": MetadataValue.json(counts)})
