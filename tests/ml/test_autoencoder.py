import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from surveillance_pipeline.ml.autoencoder import AutoencoderModel
from surveillance_pipeline.ml.base import ModelError, SurveillanceModel, write_state
from surveillance_pipeline.ml.settings import AutoencoderSettings

N_FEATURES = 10
FAST = AutoencoderSettings(hidden_layers=[16], bottleneck=4, learning_rate=1e-2, epochs=25, batch_size=16,
                           patience=5, threshold_quantile=0.9, random_state=0)
MIXING = np.random.default_rng(42).normal(size=(2, N_FEATURES))


def ordinary(rng, n):
    """Account-days on a 2-dimensional structure: every feature a linear mix of two latent factors, plus noise."""
    return rng.normal(size=(n, 2)) @ MIXING + 0.05 * rng.normal(size=(n, N_FEATURES))


def anomalies(rng, n):
    """Rows that break the structure: independent per-feature shifts no two factors can explain."""
    return ordinary(rng, n) + rng.normal(scale=1.5, size=(n, N_FEATURES))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return {"train": ordinary(rng, 400), "val": ordinary(rng, 200), "test": ordinary(rng, 200),
            "anomalies": anomalies(rng, 50)}


@pytest.fixture(scope="module")
def fitted(data):
    return AutoencoderModel(FAST).fit(data["train"], X_val=data["val"])


def test_anomalies_score_above_ordinary_rows(fitted, data):
    assert isinstance(fitted, SurveillanceModel)
    ordinary_scores = fitted.score_samples(data["test"])
    anomaly_scores = fitted.score_samples(data["anomalies"])
    labels = np.r_[np.zeros(len(ordinary_scores)), np.ones(len(anomaly_scores))]
    assert roc_auc_score(labels, np.r_[ordinary_scores, anomaly_scores]) > 0.95
    assert anomaly_scores.mean() > 0.5 > ordinary_scores.mean()
    assert fitted.predict(data["anomalies"]).mean() > 0.8


def test_scores_lie_in_unit_interval_with_the_boundary_at_the_validation_quantile(fitted, data):
    scores = fitted.score_samples(np.vstack([data["train"], data["test"], data["anomalies"], 100 * data["anomalies"]]))
    assert scores.min() >= 0.0 and scores.max() <= 1.0
    expected = 1 - FAST.threshold_quantile
    assert abs((fitted.score_samples(data["val"]) >= 0.5).mean() - expected) <= 0.02
    assert abs((fitted.score_samples(data["test"]) >= 0.5).mean() - expected) <= 0.08  # unseen ordinary rows
    errors = fitted.reconstruction_error(data["val"])
    assert fitted.threshold_ == pytest.approx(np.quantile(errors, FAST.threshold_quantile))
    predicted = fitted.predict(data["test"])
    assert predicted.dtype == np.int8
    np.testing.assert_array_equal(predicted, (fitted.score_samples(data["test"]) >= 0.5).astype(np.int8))


def test_rows_labelled_abusive_are_left_out_of_training_and_validation(data):
    rng = np.random.default_rng(1)
    # A tight cluster of abusive account-days: easy to learn if the autoencoder were allowed to see it.
    cluster = rng.normal(size=(40, N_FEATURES)) * 0.05 + rng.normal(scale=2.0, size=N_FEATURES)
    X = np.vstack([data["train"], cluster])
    y = np.r_[np.zeros(len(data["train"])), np.ones(len(cluster))]
    labelled = AutoencoderModel(FAST).fit(X, y)  # validation: a share of the ordinary rows
    unlabelled = AutoencoderModel(FAST).fit(X)
    assert labelled.score_samples(cluster).mean() > 0.8
    assert labelled.predict(cluster).mean() > 0.9
    # Seen as ordinary, the same cluster is reconstructed well (the comparison shows the test can fail).
    assert unlabelled.reconstruction_error(cluster).mean() < 0.2 * labelled.reconstruction_error(cluster).mean()
    assert labelled.score_samples(data["test"]).mean() < 0.5


def test_early_stopping_keeps_the_best_epochs_weights(data):
    settings = FAST.model_copy(update={"epochs": 150, "patience": 2})
    model = AutoencoderModel(settings).fit(data["train"], X_val=data["val"])
    val_loss = model.history_["val_loss"]
    assert len(val_loss) == len(model.history_["loss"]) == model.epochs_run_
    assert model.epochs_run_ < settings.epochs
    assert model.best_epoch_ == int(np.argmin(val_loss)) + 1 == model.epochs_run_ - settings.patience
    assert val_loss[-1] > min(val_loss)
    # The final weights are the best epoch's, not the last epoch's.
    final_loss = model.reconstruction_error(data["val"]).mean()
    assert final_loss == pytest.approx(min(val_loss), rel=1e-4)


def test_save_and_load_score_identically(fitted, data, tmp_path):
    fitted.save(tmp_path / "ae")
    assert {p.name for p in (tmp_path / "ae").iterdir()} == {"state.json", "model.keras"}
    loaded = AutoencoderModel.load(tmp_path / "ae")
    X = np.vstack([data["test"], data["anomalies"]])
    np.testing.assert_allclose(loaded.score_samples(X), fitted.score_samples(X))
    np.testing.assert_allclose(loaded.contributions(X), fitted.contributions(X))
    assert loaded.settings == fitted.settings and loaded.threshold_ == fitted.threshold_
    assert loaded.history_ == fitted.history_ and loaded.best_epoch_ == fitted.best_epoch_
    assert loaded.epochs_run_ == fitted.epochs_run_ and loaded.n_features_in_ == N_FEATURES
    fitted.save(tmp_path / "ae")  # overwriting an earlier save works
    np.testing.assert_allclose(AutoencoderModel.load(tmp_path / "ae").score_samples(X), fitted.score_samples(X))


def test_load_refuses_other_kinds_and_missing_files(tmp_path):
    write_state(tmp_path / "forest", {"kind": "isolation_forest"})
    with pytest.raises(ModelError, match="isolation_forest"):
        AutoencoderModel.load(tmp_path / "forest")
    with pytest.raises(ModelError, match="autoencoder"):
        AutoencoderModel.load(tmp_path / "nothing")
    write_state(tmp_path / "half", {"kind": "autoencoder"})
    with pytest.raises(ModelError, match=r"model\.keras"):
        AutoencoderModel.load(tmp_path / "half")


def test_contributions_point_at_the_broken_feature(fitted, data):
    # Break the feature the two factors explain least (lowest leverage): the structure cannot absorb the change
    # by moving the latent factors, so the error stays on that feature instead of spreading over the others.
    leverage = np.diag(MIXING.T @ np.linalg.solve(MIXING @ MIXING.T, MIXING))
    broken = int(np.argmin(leverage))
    row = data["test"][:1].copy()
    row[0, broken] += 6.0
    contributions = fitted.contributions(row)[0]
    assert contributions.shape == (N_FEATURES,) and (contributions >= 0).all()
    assert contributions.argmax() == broken
    assert contributions[broken] > 3 * np.delete(contributions, broken).max()
    assert fitted.score_samples(row)[0] > 0.9
    X = np.vstack([row, data["test"]])
    np.testing.assert_allclose(fitted.reconstruction_error(X), fitted.feature_errors(X).mean(axis=1))
    # On ordinary validation rows each feature's contribution averages 1 by construction.
    np.testing.assert_allclose(fitted.contributions(data["val"]).mean(axis=0), 1.0, rtol=1e-3)


def test_bad_input_raises_model_error(fitted, data, tmp_path):
    fresh = AutoencoderModel(FAST)
    for call in (fresh.score_samples, fresh.predict, fresh.contributions, fresh.reconstruction_error):
        with pytest.raises(ModelError, match="not fitted"):
            call(data["test"])
    with pytest.raises(ModelError, match="not fitted"):
        fresh.save(tmp_path / "unfitted")
    nan = data["test"].copy()
    nan[3, 2] = np.nan
    with pytest.raises(ModelError, match="NaN"):
        fitted.score_samples(nan)
    with pytest.raises(ModelError, match="fitted on 10 features, got 9"):
        fitted.predict(data["test"][:, :9])
    with pytest.raises(ModelError, match="NaN"):
        fresh.fit(nan)
    with pytest.raises(ModelError, match=r"autoencoder.*at least 10 ordinary rows"):
        fresh.fit(data["train"][:14], np.r_[np.zeros(9), np.ones(5)])
    with pytest.raises(ModelError, match=r"autoencoder.*no columns"):
        fresh.fit(np.zeros((50, 0)))
    with pytest.raises(ModelError, match="autoencoder"):
        fresh.fit(data["train"], np.zeros(3))
    with pytest.raises(ModelError, match=r"autoencoder.*validation"):
        fresh.fit(data["train"], X_val=data["val"][:5], y_val=np.ones(5))
    assert not hasattr(fresh, "model_")


def test_importing_the_module_does_not_import_tensorflow():
    code = ("import sys, surveillance_pipeline.ml.autoencoder; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported too early'")
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
