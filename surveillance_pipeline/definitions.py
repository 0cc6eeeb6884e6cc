"""The Dagster code location: one Definitions built from assets/, resources/, sensors/ and schedules/.

The only module of the library that imports Dagster (see DESIGN.md).
"""
from __future__ import annotations

from dagster import Definitions, load_assets_from_modules

import assets.alerts
import assets.detections
import assets.features
import assets.futures
import assets.ingestion
import assets.market
import assets.models
import assets.reports
import assets.storage
from assets.jobs import daily_batch_job, futures_collection_job, retraining_job
from resources.database import DatabaseResource
from resources.io_managers import PolarsParquetIOManager
from resources.market import MarketDataResource
from resources.mlflow import MLflowResource
from resources.settings import SettingsResource
from schedules.nightly_batch_schedule import nightly_batch_schedule
from schedules.retention_schedule import retention_job, retention_schedule
from schedules.retraining_schedule import weekly_retraining_schedule
from sensors.futures_market_sensor import futures_market_sensor
from sensors.landing_folder_sensor import landing_folder_sensor

ASSET_MODULES = [assets.ingestion, assets.storage, assets.features, assets.detections, assets.models,
                 assets.alerts, assets.reports, assets.market, assets.futures]


def build_resources() -> dict:
    """Resources on the configured (embedded by default) storage."""
    return {
        "settings": SettingsResource(),
        "database": DatabaseResource(),
        "io_manager": PolarsParquetIOManager(),
        "mlflow": MLflowResource(),
        "market_data": MarketDataResource(),
    }


defs = Definitions(
    assets=load_assets_from_modules(ASSET_MODULES),
    jobs=[daily_batch_job, retraining_job, futures_collection_job, retention_job],
    sensors=[landing_folder_sensor, futures_market_sensor],
    schedules=[nightly_batch_schedule, weekly_retraining_schedule, retention_schedule],
    resources=build_resources(),
)


def run_daily_batch(partition_key: str, run_config: dict | None = None):
    """Run the daily job for one partition in-process on the instance DAGSTER_HOME names (or a temporary one)."""
    import os

    from dagster import DagsterInstance

    instance = DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
    job = defs.resolve_job_def(daily_batch_job.name)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    return job.execute_in_process(partition_key=partition_key, instance=instance,
                                  run_config={**quiet, **(run_config or {})}, raise_on_error=True)
