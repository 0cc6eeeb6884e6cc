"""Every night, delete market data older than its configured age (market.retention_*)."""
from dagster import OpExecutionContext, ScheduleEvaluationContext, job, op, schedule

from resources.database import DatabaseResource
from resources.settings import SettingsResource
from surveillance_pipeline.market.retention import apply_retention


@op(description="Deletes futures market data and snapshots older than market.retention_history_days / "
                "retention_snapshot_days; logs the rows deleted per table.")
def apply_market_retention(context: OpExecutionContext, settings: SettingsResource, database: DatabaseResource):
    cfg = settings.get()
    deleted = apply_retention(database.get(), cfg.market.retention_history_days, cfg.market.retention_snapshot_days)
    context.log.info(f"retention: deleted {deleted}")
    return deleted


@job(description="Delete market data older than its configured age.")
def retention_job():
    apply_market_retention()


@schedule(job=retention_job, cron_schedule="15 2 * * *", execution_timezone="UTC",
          description="02:15 UTC every day: market data past its retention age is deleted.")
def retention_schedule(context: ScheduleEvaluationContext):
    return {}
