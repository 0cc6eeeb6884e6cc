"""The rule_detections asset: alerts per day from the validated data, with counts in its metadata."""
from __future__ import annotations


import polars as pl
import pytest
from dagster import materialize

import assets.detections
import assets.ingestion
from resources.database import DatabaseResource
from resources.io_managers import PolarsParquetIOManager
from resources.settings import SettingsResource
from surveillance_pipeline.contract import ALERT_COLUMNS
from surveillance_pipeline.scenarios import ScenarioSpec, generate_scenario
from tests.conftest import land_days, patched_environ, project_env

DAYS = ["2026-03-02", "2026-03-03"]
INGESTION = [assets.ingestion.raw_trades, assets.ingestion.raw_orders, assets.ingestion.validated_trades,
             assets.ingestion.validated_orders]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("detections")
    with patched_environ(project_env(root)):
        scenario = generate_scenario(ScenarioSpec(days=len(DAYS), seed=4, accounts=120, trades_per_day=4_000))
        land_days(root / "landing", scenario, DAYS)
        for day in DAYS:
            assert materialize(INGESTION, partition_key=day, resources=_resources(root)).success
        yield root, scenario.labels


def _resources(root) -> dict:
    return {"settings": SettingsResource(), "database": DatabaseResource(),
            "io_manager": PolarsParquetIOManager(base_dir=str(root / "warehouse"))}


def test_rule_detections_of_a_day_use_the_day_before_and_name_their_episodes(project):
    root, labels = project
    result = materialize([*INGESTION, assets.detections.rule_detections], partition_key=DAYS[1],
                         resources=_resources(root), selection=["rule_detections"])
    assert result.success
    alerts = pl.read_parquet(root / "warehouse" / "rule_detections" / f"{DAYS[1]}.parquet")
    assert alerts.columns == [*ALERT_COLUMNS, "date"]
    day_labels = labels.filter(pl.col("start").dt.date().cast(pl.String) == DAYS[1])
    assert alerts.height >= day_labels.height > 0
    assert set(day_labels["pattern"]) <= set(alerts["pattern"])
    metadata = result.asset_materializations_for_node("rule_detections")[0].metadata
    assert metadata["alerts"].value == alerts.height
    assert sum(metadata["by_pattern"].data.values()) == alerts.height
    # a re-run replaces the partition with the same alerts (stable ids)
    again = materialize([*INGESTION, assets.detections.rule_detections], partition_key=DAYS[1],
                        resources=_resources(root), selection=["rule_detections"])
    assert again.success
    rerun = pl.read_parquet(root / "warehouse" / "rule_detections" / f"{DAYS[1]}.parquet")
    assert rerun["alert_id"].to_list() == alerts["alert_id"].to_list()
