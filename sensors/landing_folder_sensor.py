"""Requests a run of a day's partition when files for that day land or change in the landing folder."""
import hashlib
import json
from collections import defaultdict

from dagster import RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from assets.jobs import daily_batch_job
from assets.partitions import daily_partitions
from resources.settings import SettingsResource
from surveillance_pipeline.ingest.landing import discover_landing_files


@sensor(job=daily_batch_job, minimum_interval_seconds=60,
        description="New or rewritten files under the landing folder: one run of their day's partition.")
def landing_folder_sensor(context: SensorEvaluationContext, settings: SettingsResource):
    cfg = settings.get()
    landing = cfg.resolve(cfg.paths.landing_dir)
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    keys = daily_partitions.get_partition_keys()
    first, last = (keys[0], keys[-1]) if keys else ("", "")
    landed = discover_landing_files(landing, cfg.partitions.landing_file_glob)
    changed = defaultdict(list)
    for landed_file in landed:
        if seen.get(str(landed_file.path)) != landed_file.fingerprint:
            changed[landed_file.day.isoformat()].append(landed_file)
    requests, notes = [], []
    for day, files in sorted(changed.items()):
        if day > last:
            notes.append(f"{day}: not a partition yet, retried on later ticks")
            continue  # not remembered: the file is picked up once its day is a partition
        for landed_file in files:
            seen[str(landed_file.path)] = landed_file.fingerprint
        if day < first:
            notes.append(f"{day}: before the first partition {first}, ignored")
            continue
        # One run per day and per version of that day's files: every file of the day is read by the run,
        # so files landing together make one run, and the same versions never make a second one.
        versions = sorted(f.fingerprint for f in landed if f.day.isoformat() == day)
        run_key = f"{day}:{hashlib.sha256(json.dumps(versions).encode()).hexdigest()[:16]}"
        requests.append(RunRequest(run_key=run_key, partition_key=day,
                                   tags={"landing_files": ", ".join(f.path.name for f in files)}))
    for note in notes:
        context.log.info(note)
    cursor = json.dumps(seen, sort_keys=True)
    if not requests:
        reason = "; ".join(notes) or f"no new files under {landing}"
        return SensorResult(skip_reason=SkipReason(reason), cursor=cursor)
    return SensorResult(run_requests=requests, cursor=cursor)
