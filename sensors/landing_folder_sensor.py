"""Requests a run of a day's partition for every new or rewritten file in the landing folder."""

import json

from dagster import RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from assets.partitions import daily_partitions
from resources.settings import SettingsResource
from surveillance_pipeline.ingest.landing import discover_landing_files
from assets.jobs import ingestion_job


@sensor(job=ingestion_job, minimum_interval_seconds=60,
        description="New files under the landing folder: one run of their day's partition per file version.")
def landing_folder_sensor(context: SensorEvaluationContext, settings: SettingsResource):
    cfg = settings.get()
    landing = cfg.resolve(cfg.paths.landing_dir)
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    known_days = set(daily_partitions.get_partition_keys())
    requests, skipped = [], []
    for landed in discover_landing_files(landing, cfg.partitions.landing_file_glob):
        key = str(landed.path)
        if seen.get(key) == landed.fingerprint:
            continue
        day = landed.day.isoformat()
        if day not in known_days:
            skipped.append(f"{landed.path.name} ({day} is outside the partitions)")
            seen[key] = landed.fingerprint
            continue
        # run_key per file version: the same file is never processed twice, a rewritten one is.
        requests.append(RunRequest(run_key=landed.fingerprint, partition_key=day,
                                   tags={"landing_file": key}))
        seen[key] = landed.fingerprint
    for note in skipped:
        context.log.warning(f"skipped {note}")
    if not requests:
        return SensorResult(skip_reason=SkipReason(f"no new files under {landing}"), cursor=json.dumps(seen))
    return SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))
