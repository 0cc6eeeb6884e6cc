"""Trainer and MLflow registry end to end on generated labelled days, with a throw-away store."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from surveillance_pipeline.ml.base import ModelError
from surveillance_pipeline.ml.dataset import LABEL, SPLIT
from surveillance_pipeline.ml.registry import KINDS
from surveillance_pipeline.ml.scoring import CHAMPION, SELF_FITTED, champion_scorer, score_account_days
from surveillance_pipeline.ml.service import train_and_register
from surveillance_pipeline.ml.trainer import ModelTrainer
from tests.models.conftest import FAST


@pytest.fixture(scope="module")
def trained(training_table):
    return ModelTrainer(FAST).train(training_table)


def test_trainer_splits_by_day_and_reports_every_model(trained, training_table):
    prepared = trained.prepared
    days = prepared.days
    assert max(days.train) < min(days.validation) <= max(days.validation) < min(days.test)
    assert sum(len(x) for x in prepared.X.values()) == training_table.height
    by_split = prepared.table.group_by(SPLIT).agg(pl.col("date").unique())
    assert by_split.height == 3  # every row is in exactly one split, and days do not straddle splits
    assert set(trained.models) == {"isolation_forest", "autoencoder", "random_forest", "ensemble"}
    assert not trained.skipped
    rows = trained.metric_rows()
    assert {(r["model"], r["split"]) for r in rows} == {(m, s) for m in trained.models for s in ("validation", "test")}
    for row in rows:
        assert row["positives"] > 0 and row["auc_roc"] is not None and 0 <= row["auc_roc"] <= 1
    # The supervised forest and the ensemble rank abusive account-days well above chance on unseen days.
    test = {r["model"]: r for r in rows if r["split"] == "test"}
    assert test["random_forest"]["auc_roc"] > 0.8 and test["ensemble"]["auc_roc"] > 0.8
    assert trained.selected in trained.models
    weights = trained.models["ensemble"].details["weights"]
    assert set(weights) == {"isolation_forest", "autoencoder", "random_forest"}
    assert min(weights.values()) >= FAST.ensemble.min_weight - 1e-9 and abs(sum(weights.values()) - 1) < 1e-9


def test_unlabelled_training_skips_the_forest_and_still_builds_an_ensemble(training_table):
    result = ModelTrainer(FAST.model_copy(update={"training": FAST.training.model_copy(
        update={"models": ["isolation_forest", "random_forest"]})})).train(
        training_table.with_columns(pl.lit(None, pl.Int8).alias(LABEL)))
    assert "random_forest" in result.skipped and "labels" in result.skipped["random_forest"]
    assert set(result.models) == {"isolation_forest", "ensemble"}
    assert result.models["ensemble"].metrics["test"]["precision"] is None  # nothing to measure against


def test_four_models_registered_promoted_and_loaded_in_a_fresh_process(trained, registry, tmp_path, settings):
    registrations = {}
    from surveillance_pipeline.ml.service import register_model

    for kind, model in trained.models.items():
        registrations[kind] = register_model(registry, model, trained.prepared, settings)
    assert {r.name for r in registrations.values()} == {f"surveillance-{k.replace('_', '-')}" for k in KINDS}
    assert all(r.promoted and r.version == 1 for r in registrations.values())
    assert all(registry.champion_version(kind) == 1 for kind in KINDS)
    run = registry.client.get_run(registrations["random_forest"].run_id)
    assert run.data.params["model"] == "random_forest" and "validation_average_precision" in run.data.metrics
    artifacts = {a.path for a in registry.client.list_artifacts(run.info.run_id)}
    assert {"scaler_and_features.json", "features.json"} <= artifacts

    table = trained.prepared.frame("test").drop(LABEL, "patterns", SPLIT)
    table_path = tmp_path / "table.parquet"
    table.write_parquet(table_path)
    expected = registry.load("ensemble").score_table(table).get_column("score").to_list()
    script = (
        "import json, sys, mlflow, polars as pl\n"
        f"mlflow.set_tracking_uri({registry.tracking_uri!r})\n"
        "out = {}\n"
        "for name in ('isolation-forest', 'autoencoder', 'random-forest', 'ensemble'):\n"
        "    model = mlflow.pyfunc.load_model(f'models:/surveillance-{name}@champion')\n"
        f"    scores = model.predict(pl.read_parquet({str(table_path)!r}).to_pandas())\n"
        "    out[name] = scores['score'].tolist()\n"
        "print(json.dumps(out))\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(loaded) == {"isolation-forest", "autoencoder", "random-forest", "ensemble"}
    np.testing.assert_allclose(loaded["ensemble"], expected, rtol=1e-6, atol=1e-9)
    assert all(len(v) == table.height and all(0 <= s <= 1 for s in v) for v in loaded.values())


def test_promotion_gate_keeps_the_better_champion_and_rollback_moves_the_alias(trained, registry, settings):
    from surveillance_pipeline.ml.random_forest import RandomForestModel
    from surveillance_pipeline.ml.service import register_model
    from surveillance_pipeline.ml.trainer import TrainedModel

    good = trained.models["random_forest"]
    first = register_model(registry, good, trained.prepared, settings)
    assert first.promoted and first.version == 1
    # A forest trained on shuffled labels: worse on the same validation days, so it must not take over.
    data = trained.prepared
    shuffled = np.random.default_rng(0).permutation(data.y["train"])
    worse = RandomForestModel(FAST.random_forest).fit(data.X["train"], shuffled)
    from surveillance_pipeline.ml.bundle import ModelBundle
    from surveillance_pipeline.ml.metrics import classification_metrics

    bundle = ModelBundle(worse, data.extractor)
    scores = {s: worse.score_samples(data.X[s]) for s in ("validation", "test")}
    metrics = {s: classification_metrics(data.y[s], scores[s]) for s in scores}
    second = register_model(registry, TrainedModel("random_forest", bundle, metrics, scores), data, settings)
    assert second.version == 2 and not second.promoted
    assert second.previous_value == pytest.approx(good.metrics["test"]["average_precision"])
    assert registry.champion_version("random_forest") == 1
    assert "kept the champion" in second.reason
    # Retraining the good model again: equal, not better -> the champion stays.
    third = register_model(registry, good, data, settings)
    assert not third.promoted and registry.champion_version("random_forest") == 1

    assert registry.rollback("random-forest", 2) == (1, 2)
    assert registry.champion_version("random_forest") == 2
    assert registry.rollback("random_forest") == (2, 1)      # back to the champion before
    with pytest.raises(ModelError, match="no earlier champion"):
        registry.rollback("random_forest")
    with pytest.raises(ModelError, match="no version 9"):
        registry.rollback("random_forest", 9)
    with pytest.raises(ModelError, match="unknown model"):
        registry.model_name("gradient_boosting")


def test_scoring_falls_back_when_a_model_is_removed(trained, registry, settings):
    from surveillance_pipeline.ml.service import register_model

    for kind in ("isolation_forest", "autoencoder", "random_forest"):
        register_model(registry, trained.models[kind], trained.prepared, settings)
    day = trained.prepared.frame("test").drop(LABEL, "patterns", SPLIT)
    # No ensemble champion: the member champions vote with the configured weights.
    scores, scorer = score_account_days(day, FAST, registry)
    assert scorer.source == CHAMPION and "no ensemble champion" in scorer.note
    assert set(scores["models"].unique()) == {"autoencoder;isolation_forest;random_forest"}
    # One model removed from the registry: the other two score, and the rows say which took part.
    registry.client.delete_registered_model("surveillance-autoencoder")
    scores, scorer = score_account_days(day, FAST, registry)
    assert set(scores["models"].unique()) == {"isolation_forest;random_forest"}
    assert "score_autoencoder" not in scores.columns
    rf, iso = FAST.ensemble.weights["random_forest"], FAST.ensemble.weights["isolation_forest"]
    row = scores.row(0, named=True)
    assert row["score"] == pytest.approx((rf * row["score_random_forest"] + iso * row["score_isolation_forest"])
                                         / (rf + iso))
    # A member that fails while scoring is left out and named.
    scorer = champion_scorer(registry, FAST)
    scorer.bundle.members["random_forest"].model.estimator_ = None
    failed = scorer.score(day)
    assert set(failed["models"].unique()) == {"isolation_forest"}
    assert "random_forest" in json.loads(failed["failed_models"][0])
    # Nothing registered at all: unsupervised models fitted on the day itself, and the rows say so.
    for kind in ("isolation_forest", "random_forest"):
        registry.client.delete_registered_model(f"surveillance-{kind.replace('_', '-')}")
    scores, scorer = score_account_days(day, FAST.model_copy(update={"fallback_models": ["isolation_forest"]}),
                                        registry)
    assert scorer.source == SELF_FITTED and set(scores["model_source"]) == {SELF_FITTED}
    assert scores.height == day.height


def test_ensemble_bundle_without_a_member_renormalises(trained, tmp_path):
    bundle = trained.models["ensemble"].bundle
    bundle.save(tmp_path / "ensemble")
    shutil.rmtree(tmp_path / "ensemble" / "autoencoder")
    from surveillance_pipeline.ml.bundle import load_bundle

    reduced = load_bundle(tmp_path / "ensemble")
    day = trained.prepared.frame("test").drop(LABEL, "patterns", SPLIT)
    scores = reduced.score_table(day)
    assert set(scores["models"].unique()) == {"isolation_forest;random_forest"}
    assert json.loads(scores["failed_models"][0]) == {"autoencoder": "model not available"}
    weights = {k: v for k, v in bundle.weights.items() if k != "autoencoder"}
    total = sum(weights.values())
    expected = sum(scores[f"score_{k}"] * w / total for k, w in weights.items())
    np.testing.assert_allclose(scores["score"].to_numpy(), expected.to_numpy())


def test_train_and_register_writes_the_report_and_attaches_it(training_table, registry, settings, tmp_path):
    outcome = train_and_register(settings, training_table, registry, tmp_path / "report", {"seed": 11})
    assert set(outcome.registrations) == {"isolation_forest", "autoencoder", "random_forest", "ensemble"}
    assert all(Path(p).exists() for p in outcome.report.values())
    assert outcome.report["pdf"].read_bytes()[:5] == b"%PDF-"
    metrics = pl.read_csv(outcome.report["csv"])
    assert metrics.height == 8 and set(metrics["split"]) == {"validation", "test"}
    artifacts = {a.path for a in registry.client.list_artifacts(outcome.registrations["ensemble"].run_id, "report")}
    assert "report/report.pdf" in artifacts and "report/roc.png" in artifacts


def test_labels_of_several_files_are_all_kept(tmp_path):
    from surveillance_pipeline.ml.service import read_labels

    header = "episode_id,pattern,symbol,user_ids,start,end\n"
    (tmp_path / "2026-03-02.csv").write_text(header + "ep-0001,wash_trading,BTCUSDT,a;b,2026-03-02T10:00:00Z,"
                                             "2026-03-02T10:10:00Z\n")
    (tmp_path / "2026-03-03.csv").write_text(header + "ep-0001,spoofing,ETHUSDT,c,2026-03-03T10:00:00Z,"
                                             "2026-03-03T10:10:00Z\n")
    labels = read_labels(tmp_path)
    assert sorted(labels["pattern"]) == ["spoofing", "wash_trading"]  # same id in two files: two episodes


def test_an_unreachable_store_is_an_error_not_no_champion():
    from surveillance_pipeline.ml.registry import ModelRegistry

    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    try:
        with pytest.raises(Exception, match="127.0.0.1"):
            ModelRegistry("http://127.0.0.1:9").champion_version("ensemble")
    finally:
        os.environ.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)
