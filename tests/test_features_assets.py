"""Feature assets: a day, and a backfilled range in one run (in-process and through the dagster CLI)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from dagster import materialize

import assets.features
import assets.ingestion
import assets.storage
from resources.database import DatabaseResource
from resources.io_managers import PolarsParquetIOManager
from resources.settings import SettingsResource
from surveillance_pipeline.features.account import ACCOUNT_FEATURES
from surveillance_pipeline.features.market import MARKET_FEATURES
from surveillance_pipeline.scenarios import ScenarioSpec, generate_scenario
from tests.conftest import land_days, patched_environ, project_env

DAYS = ["2026-03-02", "2026-03-03", "2026-03-04"]
INGESTION = [assets.ingestion.raw_trades, assets.ingestion.raw_orders, assets.ingestion.validated_trades,
             assets.ingestion.validated_orders]
FEATURES = [assets.features.account_features, assets.features.market_features]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    with patched_environ(project_env(root)):
        scenario = generate_scenario(ScenarioSpec(days=len(DAYS), seed=5, accounts=80, trades_per_day=1_500))
        land_days(root / "landing", scenario, DAYS)
        for day in DAYS:
            assert materialize(INGESTION, partition_key=day, resources=_resources(root)).success
        yield root


def _resources(root: Path) -> dict:
    return {"settings": SettingsResource(), "database": DatabaseResource(),
            "io_manager": PolarsParquetIOManager(base_dir=str(root / "warehouse"))}


def test_one_day_of_features(project):
    result = materialize([*INGESTION, *FEATURES], partition_key=DAYS[0], resources=_resources(project),
                         selection=["account_features", "market_features"])
    assert result.success
    accounts = pl.read_parquet(project / "warehouse" / "account_features" / f"{DAYS[0]}.parquet")
    assert accounts.columns == ["account_id", "date"] + [f.name for f in ACCOUNT_FEATURES]
    assert accounts.height > 50 and accounts["date"].cast(pl.String).unique().to_list() == [DAYS[0]]
    bars = pl.read_parquet(project / "warehouse" / "market_features" / f"{DAYS[0]}.parquet")
    assert set(bars["bar"]) == {"1s", "1m", "1h"}
    assert bars.columns[:3] == ["symbol", "bar", "bar_start"]
    assert all(f.name in bars.columns for f in MARKET_FEATURES)
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert set(checks) == {"account_features_drift_check", "market_features_drift_check"}


def test_backfilled_range_in_one_run_uses_the_look_back(project):
    from surveillance_pipeline.definitions import defs

    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        asset_selection=[a.key for a in FEATURES[:1]],
        tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]})
    assert result.success
    tables = {day: pl.read_parquet(project / "warehouse" / "account_features" / f"{day}.parquet") for day in DAYS}
    assert all(t["date"].cast(pl.String).unique().to_list() == [d] for d, t in tables.items())
    # the third day's week count includes the two days before it
    third = tables[DAYS[2]]
    assert (third["trades_week"] >= third["trades_day"]).all()
    assert (third["trades_week"] > third["trades_day"]).any()


def test_dagster_cli_partition_range(project):
    env = {**os.environ, "DAGSTER_HOME": str(project), "DAGSTER_STORAGE_DIR": str(project / "dagster")}
    (project / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "surveillance_pipeline.definitions",
         "--select", "account_features,market_features", "--partition-range", f"{DAYS[0]}...{DAYS[-1]}"],
        env=env, capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    for day in DAYS:
        assert (project / "warehouse" / "market_features" / f"{day}.parquet").exists()
