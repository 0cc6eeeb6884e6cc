"""The day's analyst reports: daily summary, pattern analysis of the week up to it, and the risk profile of
each account with a HIGH alert, as PDF, CSV and JSON under paths.reports_dir/<day>/."""
from datetime import date

import polars as pl
from dagster import AssetDep, AssetExecutionContext, BackfillPolicy, MetadataValue, Output, asset

from assets.partitions import daily_partitions
from resources.database import DatabaseResource
from resources.io_managers import PARTITION_COLUMN
from resources.settings import SettingsResource
from surveillance_pipeline.features.base import DATE
from surveillance_pipeline.reports import reports_for_day


@asset(partitions_def=daily_partitions, group_name="alerts", kinds={"pdf"},
       backfill_policy=BackfillPolicy.single_run(), metadata={PARTITION_COLUMN: DATE},
       deps=[AssetDep("alerts"), AssetDep("model_scores"), AssetDep("validated_trades"),
             AssetDep("account_features")])
def reports(context: AssetExecutionContext, settings: SettingsResource, database: DatabaseResource):
    """Reads the stored alerts (the database) and the day's scores, features and trades (the warehouse)."""
    cfg = settings.get()
    rows = []
    for key in sorted(context.partition_keys):
        files = reports_for_day(cfg, database.get(), date.fromisoformat(key))
        rows += [{DATE: date.fromisoformat(key), "report": name, "path": str(path)} for name, path in files.items()]
        context.log.info(f"{key}: {len(files)} report files in {next(iter(files.values())).parent}")
    table = pl.DataFrame(rows, schema={DATE: pl.Date, "report": pl.String, "path": pl.String})
    pdfs = table.filter(pl.col("path").str.ends_with(".pdf"))
    return Output(table, metadata={"files": table.height, "pdfs": MetadataValue.json(pdfs["path"].to_list()),
                                   "daily_summary": MetadataValue.path(
                                       pdfs.filter(pl.col("report") == "daily_pdf")["path"][-1])
                                   if pdfs.filter(pl.col("report") == "daily_pdf").height else "none"})
