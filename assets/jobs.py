"""Jobs the sensors and schedules launch."""
from dagster import AssetSelection, define_asset_job


# Everything partitioned by day; grows as later stages (features, detections, alerts) join the graph.
daily_batch_selection = AssetSelection.groups("ingestion", "storage", "features", "detections")

daily_batch_job = define_asset_job(
    "daily_batch_job", selection=daily_batch_selection,
    description="Read, validate and store one day of trades and orders, compute its features and run the "
                "rule detectors.",
)
