"""Small labelled feature days, fast model settings and throw-away MLflow stores for the model tests."""
from __future__ import annotations

import shutil

import pytest

from surveillance_pipeline.config import FeatureSettings, load_settings
from surveillance_pipeline.ml.dataset import build_training_set
from surveillance_pipeline.ml.scenarios import scenario_training_data
from surveillance_pipeline.ml.settings import (
    AutoencoderSettings,
    IsolationForestSettings,
    MLSettings,
    RandomForestSettings,
    TrainingSettings,
)

DAYS, SEED, ACCOUNTS, TRADES = 5, 11, 60, 2_000
FAST = MLSettings(
    isolation_forest=IsolationForestSettings(n_estimators=50, tune_n_estimators=[50], tune_max_samples=["auto"],
                                             tune_contamination=[0.05, 0.1], tune_folds=2),
    autoencoder=AutoencoderSettings(hidden_layers=[16], bottleneck=4, epochs=15, patience=3, batch_size=64),
    random_forest=RandomForestSettings(n_estimators=50, warm_start_trees=10),
    training=TrainingSettings(scenario_days=DAYS, scenario_accounts=ACCOUNTS, scenario_trades_per_day=TRADES),
)
# The YAML form of FAST, for the Dagster and CLI tests that read a config file.
FAST_YAML = f"""
models:
  isolation_forest: {{n_estimators: 50, tune_n_estimators: [50], tune_max_samples: [auto],
                     tune_contamination: [0.05, 0.1], tune_folds: 2}}
  autoencoder: {{hidden_layers: [16], bottleneck: 4, epochs: 15, patience: 3, batch_size: 64}}
  random_forest: {{n_estimators: 50, warm_start_trees: 10}}
  training: {{scenario_days: {DAYS}, scenario_accounts: {ACCOUNTS}, scenario_trades_per_day: {TRADES}}}
"""


@pytest.fixture(scope="session")
def scenario_data():
    """(account features of 5 generated days, their episode labels)."""
    return scenario_training_data(DAYS, SEED, ACCOUNTS, TRADES, FeatureSettings())


@pytest.fixture(scope="session")
def training_table(scenario_data):
    features, labels = scenario_data
    return build_training_set(features, labels)


@pytest.fixture
def settings(tmp_path):
    return load_settings().model_copy(update={"models": FAST, "root": tmp_path})


@pytest.fixture(scope="session")
def _migrated_store(tmp_path_factory):
    """One MLflow SQLite store with its tables created (the migrations take seconds), copied per test."""
    from surveillance_pipeline.ml.registry import ModelRegistry

    folder = tmp_path_factory.mktemp("mlflow-template")
    ModelRegistry(f"sqlite:///{folder / 'mlflow.db'}")._experiment_id()
    return folder / "mlflow.db"


@pytest.fixture
def tracking_uri(tmp_path, _migrated_store):
    folder = tmp_path / "mlflow"
    folder.mkdir()
    shutil.copyfile(_migrated_store, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture
def registry(tracking_uri):
    from surveillance_pipeline.ml.registry import ModelRegistry

    return ModelRegistry(tracking_uri)
