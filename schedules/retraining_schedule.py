"""Every week, retrain the models on the newest labelled feature days (the promotion gate decides)."""

from dagster import RunRequest, ScheduleEvaluationContext, schedule

from assets.jobs import retraining_job


@schedule(job=retraining_job, cron_schedule="0 3 * * 0", execution_timezone="UTC",
          description="Sundays 03:00 UTC: training set from the newest feature days and labels, the three models "
                      "and the ensemble; a new version becomes champion only if it beats the current one.")
def weekly_retraining_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    week = context.scheduled_execution_time.date().isoformat()
    return RunRequest(run_key=f"retrain-{week}", tags={"trigger": "weekly_retraining_schedule", "week": week})
