"""Daily UTC partitions shared by every daily asset."""
from dagster import DailyPartitionsDefinition

from surveillance_pipeline.config import load_settings

daily_partitions = DailyPartitionsDefinition(start_date=load_settings().partitions.start_date, timezone="UTC")
