"""The model assets in Dagster: training set -> three models -> ensemble, registered in MLflow; daily
model_scores with the champion; the weekly retraining schedule."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest
from dagster import build_schedule_context, load_assets_from_modules, materialize

import assets.features
import assets.ingestion
import assets.models
from resources.database import DatabaseResource
from resources.io_managers import PolarsParquetIOManager
from resources.mlflow import MLflowResource
from resources.settings import SettingsResource
from tests.models.conftest import FAST_YAML

# model_scores alone, its upstream loaded from the warehouse by the IO manager.
SCORING = [*load_assets_from_modules([assets.ingestion, assets.features]), assets.models.model_scores]
MODEL_ASSETS = [assets.models.training_set, assets.models.isolation_forest_model, assets.models.autoencoder_model,
                assets.models.random_forest_model, assets.models.model_ensemble]


@pytest.fixture
def project(tmp_path: Path, scenario_data, tracking_uri, monkeypatch):
    """Account features of 5 stored days, their labels in the labels folder, a fast model config."""
    features, labels = scenario_data
    warehouse = tmp_path / "warehouse"
    for (day,), frame in features.partition_by("date", as_dict=True).items():
        (warehouse / "account_features").mkdir(parents=True, exist_ok=True)
        frame.write_parquet(warehouse / "account_features" / f"{day}.parquet")
    (tmp_path / "labels").mkdir()
    labels.write_csv(tmp_path / "labels" / "episodes.csv")
    config = tmp_path / "surveillance.yaml"
    config.write_text(f"paths:\n  warehouse_dir: {warehouse}\n  labels_dir: {tmp_path / 'labels'}\n" + FAST_YAML)
    monkeypatch.setenv("SURVEILLANCE_CONFIG", str(config))
    return {"root": tmp_path, "warehouse": warehouse, "config": config, "tracking_uri": tracking_uri,
            "days": sorted(str(d) for d in features["date"].unique())}


def _resources(project) -> dict:
    return {"settings": SettingsResource(config_path=str(project["config"])),
            "io_manager": PolarsParquetIOManager(base_dir=str(project["warehouse"])),
            "mlflow": MLflowResource(tracking_uri=project["tracking_uri"]),
            "database": DatabaseResource(url=f"sqlite:///{project['root'] / 'surveillance.db'}")}


def _metadata(result, key: str) -> dict:
    events = [e for e in result.get_asset_materialization_events()
              if e.event_specific_data.materialization.asset_key.to_user_string() == key]
    return {k: v.value for k, v in events[-1].event_specific_data.materialization.metadata.items()}


def test_training_registers_four_models_and_scoring_uses_the_champion(project):
    result = materialize(MODEL_ASSETS, resources=_resources(project))
    assert result.success
    training = _metadata(result, "training_set")
    assert training["days"] == 5 and training["labelled"] and training["abusive_account_days"] > 0
    for key in ("isolation_forest_model", "autoencoder_model", "random_forest_model", "model_ensemble"):
        meta = _metadata(result, key)
        assert meta["version"] == 1 and meta["champion"] is True and meta["mlflow_run_id"]
        assert "validation_auc_roc" in meta and "test_average_precision" in meta
    assert set(_metadata(result, "model_ensemble")["weights"]) == {"isolation_forest", "autoencoder", "random_forest"}

    from surveillance_pipeline.ml.registry import KINDS, ModelRegistry

    registry = ModelRegistry(project["tracking_uri"])
    assert all(registry.champion_version(kind) == 1 for kind in KINDS)

    day = project["days"][-1]
    scored = materialize(SCORING,
                         selection=["model_scores"], partition_key=day, resources=_resources(project))
    assert scored.success
    scores = pl.read_parquet(project["warehouse"] / "model_scores" / f"{day}.parquet")
    assert scores.height == 60 and set(scores["model_source"]) == {"champion"}
    assert set(scores["models"]) == {"autoencoder;isolation_forest;random_forest"}
    assert scores["score"].is_between(0, 1).all() and scores["top_features"].str.len_chars().min() > 0
    assert '"surveillance-ensemble": "1"' in scores["model_versions"][0]
    assert _metadata(scored, "model_scores")["account_days"] == 60

    # Retraining on the same data: new versions, but none better on validation, so the champions stay.
    again = materialize(MODEL_ASSETS, resources=_resources(project))
    assert again.success
    meta = _metadata(again, "random_forest_model")
    assert meta["version"] == 2 and meta["champion"] is False and "kept the champion" in meta["gate"]
    assert registry.champion_version("random_forest") == 1


def test_unlabelled_training_set_trains_the_unsupervised_models_only(project):
    for path in (project["root"] / "labels").glob("*"):
        path.unlink()
    result = materialize([assets.models.training_set, assets.models.isolation_forest_model,
                          assets.models.random_forest_model], resources=_resources(project))
    assert result.success
    assert _metadata(result, "training_set")["labelled"] is False
    assert _metadata(result, "random_forest_model")["status"] == "not trained"
    assert _metadata(result, "isolation_forest_model")["version"] == 1


def test_training_without_feature_days_fails_loudly(project):
    for path in (project["warehouse"] / "account_features").glob("*"):
        path.unlink()
    with pytest.raises(Exception, match="materialise account_features first"):
        materialize([assets.models.training_set], resources=_resources(project))


def test_model_scores_without_a_champion_fit_on_the_day_and_say_so(project):
    config = project["config"]
    config.write_text(config.read_text() + "  fallback_models: [isolation_forest]\n")
    day = project["days"][0]
    result = materialize(SCORING,
                         selection=["model_scores"], partition_key=day, resources=_resources(project))
    assert result.success
    scores = pl.read_parquet(project["warehouse"] / "model_scores" / f"{day}.parquet")
    assert set(scores["model_source"]) == {"self-fitted"} and set(scores["models"]) == {"isolation_forest"}
    assert "self-fitted" in str(_metadata(result, "model_scores")["model_source"])


def test_weekly_retraining_schedule_is_defined_and_runs_the_model_assets():
    from schedules.retraining_schedule import weekly_retraining_schedule
    from surveillance_pipeline.definitions import defs

    repository = defs.get_repository_def()
    schedule = repository.get_schedule_def("weekly_retraining_schedule")
    assert schedule.cron_schedule == "0 3 * * 0" and schedule.job_name == "retraining_job"
    job = repository.get_job("retraining_job")
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert keys == {"training_set", "isolation_forest_model", "autoencoder_model", "random_forest_model",
                    "model_ensemble"}
    request = weekly_retraining_schedule(build_schedule_context(
        scheduled_execution_time=datetime(2026, 3, 8, 3, 0, tzinfo=timezone.utc)))
    assert request.run_key == "retrain-2026-03-08" and request.tags["trigger"] == "weekly_retraining_schedule"


def test_retraining_can_grow_the_champion_forest(project):
    config = project["config"]
    config.write_text(config.read_text().replace("warm_start_trees: 10}", "warm_start_trees: 10, retrain: grow}"))
    first = materialize([assets.models.training_set, assets.models.random_forest_model], resources=_resources(project))
    assert first.success and _metadata(first, "random_forest_model")["version"] == 1
    again = materialize([assets.models.training_set, assets.models.random_forest_model], resources=_resources(project))
    assert again.success
    from surveillance_pipeline.ml.registry import ModelRegistry

    registry = ModelRegistry(project["tracking_uri"])
    grown = registry.load("random_forest", 2).model
    original = registry.load("random_forest", 1).model
    assert len(grown.estimator_.estimators_) == len(original.estimator_.estimators_) + 10
    run = registry.client.get_run(_metadata(again, "random_forest_model")["mlflow_run_id"])
    details = {a.path for a in registry.client.list_artifacts(run.info.run_id)}
    assert "details.json" in details
