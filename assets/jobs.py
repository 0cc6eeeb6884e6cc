"""Jobs the sensors and schedules launch."""
from dagster import AssetSelection, define_asset_job

from assets.partitions import daily_partitions

# Everything partitioned by day; grows as later stages (features, detections, alerts) join the graph.
daily_batch_selection = AssetSelection.groups("ingestion", "storage")

ingestion_job = define_asset_job(
    "ingestion_job", selection=daily_batch_selection, partitions_def=daily_partitions,
    description="Read, validate and store one day of trades and orders.",
)
