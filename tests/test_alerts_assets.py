"""The alerts asset at the end of the daily chain: stored, exported, idempotent per partition."""
from __future__ import annotations

import json

import polars as pl
import pytest
from dagster import load_assets_from_modules, materialize

import assets.alerts
import assets.detections
import assets.features
import assets.ingestion
import assets.models
import assets.storage
from resources.database import DatabaseResource
from resources.io_managers import PolarsParquetIOManager
from resources.mlflow import MLflowResource
from resources.settings import SettingsResource
from surveillance_pipeline.contract import ALERT_COLUMNS
from surveillance_pipeline.engine.store import read_alerts
from surveillance_pipeline.scenarios import ScenarioSpec, generate_scenario
from surveillance_pipeline.storage.database import Database

DAYS = ["2026-03-02", "2026-03-03"]
DAILY = load_assets_from_modules([assets.ingestion, assets.storage, assets.features, assets.detections,
                                  assets.models, assets.alerts])
import assets.reports  # noqa: E402
from tests.conftest import land_days, patched_environ, project_env

DAILY = [*DAILY, assets.reports.reports]
SELECTION = ["raw_trades", "raw_orders", "validated_trades", "trade_rejects", "validated_orders", "order_rejects",
             "account_features", "rule_detections", "model_scores", "alerts"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("alerts")
    with patched_environ(project_env(root)):
        scenario = generate_scenario(ScenarioSpec(days=len(DAYS), seed=4, accounts=300, trades_per_day=4_000))
        land_days(root / "landing", scenario, DAYS)
        yield root, scenario


def _resources(root) -> dict:
    return {"settings": SettingsResource(), "database": DatabaseResource(),
            "io_manager": PolarsParquetIOManager(base_dir=str(root / "warehouse")),
            "mlflow": MLflowResource(tracking_uri=str(root / "mlflow"))}


def _run(root, day):
    result = materialize(DAILY, partition_key=day, resources=_resources(root), selection=SELECTION)
    assert result.success
    event = next(e for e in result.get_asset_materialization_events()
                 if e.event_specific_data.materialization.asset_key.to_user_string() == "alerts")
    return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}


def test_alerts_are_stored_exported_and_idempotent(project):
    root, scenario = project
    meta = _run(root, DAYS[0])
    table = pl.read_parquet(root / "warehouse" / "alerts" / f"{DAYS[0]}.parquet")
    assert table.height == meta["alerts"] > 0
    assert list(table.columns[:len(ALERT_COLUMNS)]) == list(ALERT_COLUMNS)
    assert sum(meta["by_pattern"].values()) == sum(meta["by_risk_level"].values()) == table.height
    assert set(table["sources"]) <= {"rules", "rules;models", "models"}
    rows = json.loads((root / "alerts" / DAYS[0] / "alerts.json").read_text())
    assert sorted(r["alert_id"] for r in rows) == sorted(table["alert_id"])
    db = Database(f"sqlite:///{root / 'surveillance.db'}")
    import datetime as dt

    day = dt.date.fromisoformat(DAYS[0])
    stored = read_alerts(db, day, day)
    assert sorted(stored["alert_id"]) == sorted(table["alert_id"])
    # The same partition again: the same alerts, not twice as many.
    again = _run(root, DAYS[0])
    assert again["alerts"] == meta["alerts"]
    assert sorted(read_alerts(db, day, day)["alert_id"]) == sorted(table["alert_id"])
    # The next day is its own partition; days before it are read for links.
    _run(root, DAYS[1])
    both = read_alerts(db, day, day + dt.timedelta(days=1))
    assert both["date"].n_unique() == 2 and both["alert_id"].is_unique().all()
    db.dispose()


def test_reports_asset_and_reports_on_demand(project, tmp_path):
    from typer.testing import CliRunner

    from surveillance_pipeline.cli import app

    root, _ = project
    if not (root / "warehouse" / "alerts" / f"{DAYS[1]}.parquet").exists():
        _run(root, DAYS[0])
        _run(root, DAYS[1])
    result = materialize(DAILY, partition_key=DAYS[1], resources=_resources(root), selection=["reports"])
    assert result.success
    folder = root / "reports" / DAYS[1]
    for name in ("daily_summary", "pattern_analysis"):
        for suffix in ("pdf", "csv", "json"):
            assert (folder / f"{name}.{suffix}").exists()
    day_alerts = pl.read_parquet(root / "warehouse" / "alerts" / f"{DAYS[1]}.parquet")
    summary = json.loads((folder / "daily_summary.json").read_text())
    assert json.dumps(summary).count(day_alerts["alert_id"][0]) >= 1
    profiles = sorted(folder.glob("account_*.pdf"))
    high = day_alerts.filter(pl.col("risk_level") == "HIGH")
    assert len(profiles) == min(5, len({a for u in high["user_ids"] for a in u.split(";") if a}))

    runner = CliRunner()
    out = tmp_path / "on-demand"
    daily = runner.invoke(app, ["report", "daily", "--from", DAYS[0], "--to", DAYS[1], "--out", str(out)])
    assert daily.exit_code == 0, daily.output
    assert (out / "daily_summary.pdf").exists()
    rows = pl.read_csv(out / "daily_summary.csv")
    both = pl.read_parquet([root / "warehouse" / "alerts" / f"{d}.parquet" for d in DAYS])
    assert rows.height == both.height
    account = next(a for u in both["user_ids"] for a in u.split(";") if a)
    profile = runner.invoke(app, ["report", "account", "--from", DAYS[0], "--to", DAYS[1], "--account", account,
                                  "--out", str(out)])
    assert profile.exit_code == 0, profile.output
    assert (out / f"account_{account}.pdf").exists()
    pattern = runner.invoke(app, ["report", "pattern", "--from", DAYS[0], "--to", DAYS[1], "--out", str(out)])
    assert pattern.exit_code == 0 and (out / "pattern_analysis.pdf").exists()
    missing = runner.invoke(app, ["report", "account", "--from", DAYS[0], "--out", str(out)])
    assert missing.exit_code == 2 and "--account" in missing.output
