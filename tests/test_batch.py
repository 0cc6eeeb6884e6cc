"""`surveillance backfill`: a range of landed days through the daily job in parallel waves."""
from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from typer.testing import CliRunner

from surveillance_pipeline.cli import app
from surveillance_pipeline.scenarios import ScenarioSpec, generate_scenario
from tests.conftest import land_days, project_env

DAYS = ["2026-03-02", "2026-03-03", "2026-03-04"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    for name, value in {**project_env(tmp_path), "MLFLOW_TRACKING_URI": str(tmp_path / "mlflow")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    scenario = generate_scenario(ScenarioSpec(days=len(DAYS), seed=8, accounts=200, trades_per_day=2_500))
    land_days(tmp_path / "landing", scenario, DAYS)
    return tmp_path


def test_backfill_runs_every_day_in_waves(project):
    result = CliRunner().invoke(app, ["backfill", "--from", DAYS[0], "--to", DAYS[-1], "--concurrency", "2"])
    assert result.exit_code == 0, result.output
    assert result.output.count(" ok") == 3 * len(DAYS) and f"[{3 * len(DAYS)}/{3 * len(DAYS)}]" in result.output
    for day in DAYS:
        assert (project / "warehouse" / "alerts" / f"{day}.parquet").exists()
        assert (project / "reports" / day / "daily_summary.pdf").exists()
    # Wave 2 ran after every day was ingested: the last day's week counts include the days before it.
    last = pl.read_parquet(project / "warehouse" / "account_features" / f"{DAYS[-1]}.parquet")
    assert (last["trades_week"] > last["trades_day"]).any()


def test_a_failing_partition_stops_the_later_waves(project):
    from surveillance_pipeline.batch import backfill

    for path in (project / "landing" / DAYS[1]).glob("trades*"):
        path.unlink()
    seen = []
    result = backfill(date.fromisoformat(DAYS[0]), date.fromisoformat(DAYS[-1]), 2,
                      lambda run, done, total: seen.append(run))
    assert [r.day for r in result.failed] == [DAYS[1]] and "no trades files" in result.failed[0].error
    assert {r.wave for r in result.runs} == {"ingest"} and len(seen) == len(DAYS)
    assert not (project / "warehouse" / "alerts").exists()
