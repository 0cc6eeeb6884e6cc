"""Historical analysis over a date range (`surveillance backfill`): the daily job's partitions run in parallel
worker processes, in three waves, so that every day sees what it depends on:

1. ingest (raw -> validated -> stored) of every day, in parallel: days do not depend on each other;
2. features, rule detections and model scores of every day, in parallel: they read the validated days before
   them (look-back and history), all ingested in wave 1;
3. alerts and reports, one day after the other: a day's alerts link to the alerts of the days before it.

Each run is one partition (memory is bounded by a day, not the range) and is recorded on the Dagster instance
DAGSTER_HOME names (an ephemeral one without it). Inside a run, steps use Dagster's multiprocess executor when
launched from the UI; here every run is executed in-process by its worker, `concurrency` workers at a time.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date, timedelta

WAVES: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("ingest", ("ingestion", "storage"), True),
    ("analyse", ("features", "detections", "scoring"), True),
    ("alerts", ("alerts",), False),
)


@dataclass
class PartitionRun:
    wave: str
    day: str
    seconds: float
    peak_rss_mb: float
    ok: bool
    error: str = ""


@dataclass
class BackfillResult:
    days: list[str]
    runs: list[PartitionRun] = field(default_factory=list)

    @property
    def failed(self) -> list[PartitionRun]:
        return [r for r in self.runs if not r.ok]


def _peak_rss_mb() -> float:
    with contextlib.suppress(OSError):  # not Linux: no /proc, the figure is unknown
        for line in open("/proc/self/status", encoding="ascii"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_partition(wave: str, groups: tuple[str, ...], day: str) -> PartitionRun:
    """One partition of the daily job restricted to `groups`, executed in this process."""
    import warnings

    warnings.filterwarnings("ignore")
    from dagster import AssetSelection, DagsterInstance

    from surveillance_pipeline.definitions import defs

    began = time.perf_counter()
    instance = DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
    job = defs.resolve_job_def("daily_batch_job")
    keys = AssetSelection.groups(*groups).resolve(defs.resolve_asset_graph())
    try:
        result = job.execute_in_process(
            partition_key=day, instance=instance, asset_selection=list(keys), raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
            tags={"trigger": "surveillance backfill", "wave": wave})
        error = "" if result.success else "; ".join(
            str(e.event_specific_data.error.message).strip().splitlines()[0]
            for e in result.all_events if e.is_step_failure)[:2000]
        return PartitionRun(wave, day, time.perf_counter() - began, _peak_rss_mb(), result.success, error)
    except Exception as error:  # recorded and reported, never swallowed: the backfill fails with it
        return PartitionRun(wave, day, time.perf_counter() - began, _peak_rss_mb(), False,
                            f"{type(error).__name__}: {error}")


def _prepare_stores() -> None:
    """Create the database schema and the MLflow store here, once: workers creating them at the same moment
    race on their migrations."""
    from surveillance_pipeline.config import load_settings
    from surveillance_pipeline.ml.service import registry_for
    from surveillance_pipeline.storage.database import Database

    settings = load_settings()
    database = Database(settings.database_url)
    database.migrate()
    database.dispose()
    registry_for(settings).client.search_registered_models(max_results=1)


def backfill(first: date, last: date, concurrency: int = 2,
             progress: Callable[[PartitionRun, int, int], None] = lambda run, done, total: None) -> BackfillResult:
    """Every day of [first, last] through the daily job in the three waves; stops after a wave with failures
    (later waves would read what is missing)."""
    if last < first:
        raise ValueError("the last day is before the first")
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    result = BackfillResult(days)
    total = len(days) * len(WAVES)
    _prepare_stores()
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no state shared with the caller
    with ProcessPoolExecutor(max_workers=max(1, concurrency), mp_context=context) as pool:
        for wave, groups, parallel in WAVES:
            if parallel:
                futures = [pool.submit(run_partition, wave, groups, day) for day in days]
                for future in as_completed(futures):
                    result.runs.append(future.result())
                    progress(result.runs[-1], len(result.runs), total)
            else:
                for day in days:
                    result.runs.append(pool.submit(run_partition, wave, groups, day).result())
                    progress(result.runs[-1], len(result.runs), total)
                    if not result.runs[-1].ok:
                        break  # the days after it would link to alerts that are missing
            if result.failed:
                break
    return result
