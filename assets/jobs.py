"""Jobs the sensors and schedules launch."""
from dagster import AssetSelection, define_asset_job

# Everything partitioned by day: read, validate, store, features, rule detections, model scores.
daily_batch_selection = AssetSelection.groups("ingestion", "storage", "features", "detections", "scoring",
                                              "alerts")

daily_batch_job = define_asset_job(
    "daily_batch_job", selection=daily_batch_selection,
    description="Read, validate and store one day of trades and orders, compute its features, run the rule "
                "detectors, score every account-day with the champion models, raise the day's alerts and write "
                "its reports.",
)

# The unpartitioned model assets: training set, the three models, the ensemble.
retraining_job = define_asset_job(
    "retraining_job", selection=AssetSelection.groups("models"),
    description="Train the models on the newest labelled feature days and register them in MLflow; the "
                "promotion gate decides which versions become champion.",
)
