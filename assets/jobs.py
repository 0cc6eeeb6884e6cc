"""Jobs the sensors and schedules launch."""
from dagster import AssetSelection, define_asset_job, multiprocess_executor

from surveillance_pipeline.config import load_settings

# Runs launched from the UI, a sensor or a schedule: the steps of a partition in parallel processes.
EXECUTOR = multiprocess_executor.configured(
    {"max_concurrent": load_settings().batch.max_concurrent_steps}, name="multiprocess_configured")

# Everything partitioned by day: read, validate, store, features, rule detections, model scores.
daily_batch_selection = AssetSelection.groups("ingestion", "storage", "features", "detections", "scoring",
                                              "alerts")

daily_batch_job = define_asset_job(
    "daily_batch_job", selection=daily_batch_selection, executor_def=EXECUTOR,
    description="Read, validate and store one day of trades and orders, compute its features, run the rule "
                "detectors, score every account-day with the champion models, raise the day's alerts and write "
                "its reports.",
)

# The unpartitioned model assets: training set, the three models, the ensemble.
retraining_job = define_asset_job(
    "retraining_job", selection=AssetSelection.groups("models"), executor_def=EXECUTOR,
    description="Train the models on the newest labelled feature days and register them in MLflow; the "
                "promotion gate decides which versions become champion.",
)

# Futures market data from the exchange's MCP server (the futures sensor requests it).
futures_collection_job = define_asset_job(
    "futures_collection_job", selection=AssetSelection.groups("market"), executor_def=EXECUTOR,
    description="Collect a day of futures market data (funding, premium, basis, liquidations, snapshots) from "
                "the exchange's MCP server.",
)
