"""Every night, the daily batch for yesterday's UTC partition."""

from datetime import timedelta

from dagster import RunRequest, ScheduleEvaluationContext, schedule

from assets.jobs import daily_batch_job


@schedule(job=daily_batch_job, cron_schedule="30 0 * * *", execution_timezone="UTC",
          description="Yesterday's partition at 00:30 UTC, once per date (run_key = the date).")
def nightly_batch_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return RunRequest(run_key=day, partition_key=day, tags={"trigger": "nightly_batch_schedule"})
