import itertools

import numpy as np
import pytest

from surveillance_pipeline.ml.base import ModelError, SurveillanceModel
from surveillance_pipeline.ml.isolation_forest import IsolationForestModel
from surveillance_pipeline.ml.settings import IsolationForestSettings

N_FEATURES = 4
FAST = IsolationForestSettings(n_estimators=50, contamination=0.1, random_state=0)


def cloud(rng, n):
    return rng.normal(size=(n, N_FEATURES))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return {"train": cloud(rng, 400), "test": cloud(rng, 200),
            "outliers": cloud(rng, 20) + rng.choice([-8.0, 8.0], size=(20, N_FEATURES))}


@pytest.fixture(scope="module")
def fitted(data):
    return IsolationForestModel(FAST).fit(data["train"])


def test_scores_lie_in_the_unit_interval(fitted, data):
    assert isinstance(fitted, SurveillanceModel)
    scores = fitted.score_samples(np.vstack([data["train"], data["test"], data["outliers"], 100 * data["outliers"]]))
    assert scores.min() >= 0.0 and scores.max() <= 1.0
    assert scores.min() == 0.0  # the least anomalous training row is `low_`


def test_about_contamination_of_ordinary_training_rows_score_at_least_half(fitted, data):
    share = (fitted.score_samples(data["train"]) >= 0.5).mean()
    assert share == pytest.approx(FAST.contamination, abs=0.01)
    unseen = cloud(np.random.default_rng(5), 2000)  # the boundary is estimated on 400 rows: a looser band
    assert abs((fitted.score_samples(unseen) >= 0.5).mean() - FAST.contamination) < 0.06
    other = IsolationForestModel(FAST.model_copy(update={"contamination": 0.25})).fit(data["train"])
    assert (other.score_samples(data["train"]) >= 0.5).mean() == pytest.approx(0.25, abs=0.01)
    predicted = fitted.predict(data["train"])
    assert predicted.dtype == np.int8
    np.testing.assert_array_equal(predicted, (fitted.score_samples(data["train"]) >= 0.5).astype(np.int8))


def test_obvious_outliers_score_above_half_and_above_ordinary_rows(fitted, data):
    outlier_scores = fitted.score_samples(data["outliers"])
    ordinary_scores = fitted.score_samples(data["test"])
    assert (outlier_scores > 0.5).all()
    assert outlier_scores.min() > np.quantile(ordinary_scores, 0.95)
    assert fitted.predict(data["outliers"]).all()


def test_rows_labelled_abusive_are_left_out_of_fitting(data):
    rng = np.random.default_rng(1)
    # A big, tight cluster far from the cloud: ordinary-looking to a forest fitted on it, unless left out.
    cluster = rng.normal(size=(150, N_FEATURES)) * 0.1 + 6.0
    X = np.vstack([data["train"], cluster])
    y = np.r_[np.zeros(len(data["train"])), np.ones(len(cluster))]
    labelled = IsolationForestModel(FAST).fit(X, y)
    unlabelled = IsolationForestModel(FAST).fit(X)
    assert labelled.predict(cluster).mean() > 0.9
    assert labelled.score_samples(cluster).mean() > 0.6
    # fitted on the cluster as ordinary rows, the forest sees it as ordinary (the comparison shows the test can fail)
    assert unlabelled.predict(cluster).mean() < 0.5
    assert unlabelled.score_samples(cluster).mean() < labelled.score_samples(cluster).mean() - 0.2
    # the ordinary reference (median) and the boundary come from the y == 0 rows only
    np.testing.assert_allclose(labelled.center_, np.median(data["train"], axis=0))
    assert (labelled.score_samples(data["train"]) >= 0.5).mean() == pytest.approx(FAST.contamination, abs=0.01)


def test_fit_needs_ten_ordinary_rows(data):
    X = data["train"][:30]
    y = np.r_[np.zeros(9), np.ones(21)]
    with pytest.raises(ModelError, match="isolation_forest.*10 ordinary"):
        IsolationForestModel(FAST).fit(X, y)


# -- tuning ------------------------------------------------------------------------------------------------------

TUNING = FAST.model_copy(update={"tune_n_estimators": [10, 20], "tune_max_samples": ["auto", 64],
                                 "tune_contamination": [0.02, 0.1], "tune_folds": 3})


@pytest.fixture(scope="module")
def labelled_days():
    """6 days of 80 account-days; 4 abusive account-days per day, far out in every feature."""
    rng = np.random.default_rng(2)
    days, per_day = 6, 80
    X = cloud(rng, days * per_day)
    groups = np.repeat(np.arange(days), per_day)
    y = np.zeros(len(X), dtype=np.int8)
    abusive = np.concatenate([np.arange(d * per_day, d * per_day + 4) for d in range(days)])
    X[abusive] += rng.choice([-1.0, 1.0], size=(len(abusive), N_FEATURES)) * rng.uniform(4, 6, (len(abusive), N_FEATURES))
    y[abusive] = 1
    return X, y, groups


def test_tune_scores_every_combination_and_keeps_the_best(labelled_days):
    X, y, groups = labelled_days
    model = IsolationForestModel(TUNING)
    results = model.tune(X, y, groups)
    combos = {(r["n_estimators"], r["max_samples"], r["contamination"]) for r in results}
    assert len(results) == 8
    assert combos == set(itertools.product([10, 20], ["auto", 64], [0.02, 0.1]))
    assert all(r["folds"] == 3 for r in results)
    assert all(0.0 <= r["average_precision"] <= 1.0 and 0.0 <= r["f1"] <= 1.0 for r in results)
    best = max(results, key=lambda r: (r["average_precision"], r["f1"]))
    assert model.tuned_params_ == {k: best[k] for k in ("n_estimators", "max_samples", "contamination")}
    assert model.tuning_ is results
    # the contamination is judged by F1 at its cut: far-out abuse (5% of rows) makes the 2% cut more precise
    assert model.tuned_params_["contamination"] == 0.02


def test_the_next_fit_uses_the_tuned_parameters(labelled_days):
    X, y, groups = labelled_days
    model = IsolationForestModel(TUNING)
    model.tune(X, y, groups)
    model.tuned_params_ = {"n_estimators": 20, "max_samples": 64, "contamination": 0.2}  # unlike the settings
    model.fit(X, y)
    assert model.params_ == {"n_estimators": 20, "max_samples": 64, "contamination": 0.2}
    assert model.estimator_.n_estimators == 20 and len(model.estimator_.estimators_) == 20
    assert model.estimator_.max_samples == 64
    ordinary = X[y == 0]
    assert (model.score_samples(ordinary) >= 0.5).mean() == pytest.approx(0.2, abs=0.01)


def test_without_tuning_fit_uses_the_settings(data):
    model = IsolationForestModel(FAST).fit(data["train"])
    assert model.params_ == {"n_estimators": 50, "max_samples": "auto", "contamination": 0.1}
    assert len(model.estimator_.estimators_) == 50


def test_tune_needs_both_classes_and_two_days(labelled_days):
    X, y, groups = labelled_days
    with pytest.raises(ModelError, match="isolation_forest"):
        IsolationForestModel(TUNING).tune(X, np.zeros_like(y), groups)
    with pytest.raises(ModelError, match="isolation_forest"):
        IsolationForestModel(TUNING).tune(X, np.ones_like(y), groups)
    with pytest.raises(ModelError, match="isolation_forest"):
        IsolationForestModel(TUNING).tune(X, y, np.zeros_like(groups))
    assert not hasattr(IsolationForestModel(TUNING), "tuned_params_")


# -- contributions, persistence, errors ---------------------------------------------------------------------------

def test_contributions_point_at_the_extreme_feature(fitted, data):
    rows = np.tile(np.median(data["train"], axis=0), (N_FEATURES, 1))
    for feature in range(N_FEATURES):
        rows[feature, feature] += 10.0
    contributions = fitted.contributions(rows)
    assert contributions.shape == (N_FEATURES, N_FEATURES)
    assert (contributions >= 0).all()
    np.testing.assert_array_equal(contributions.argmax(axis=1), np.arange(N_FEATURES))
    ordinary = fitted.contributions(data["test"])
    assert ordinary.shape == data["test"].shape and (ordinary >= 0).all()


def test_save_load_round_trip_gives_identical_scores(fitted, data, tmp_path):
    fitted.save(tmp_path / "if")
    loaded = IsolationForestModel.load(tmp_path / "if")
    X = np.vstack([data["test"], data["outliers"]])
    np.testing.assert_array_equal(loaded.score_samples(X), fitted.score_samples(X))
    np.testing.assert_array_equal(loaded.contributions(X), fitted.contributions(X))
    assert loaded.params_ == fitted.params_
    assert loaded.settings == fitted.settings
    assert (loaded.boundary_, loaded.low_, loaded.n_features_in_) == (fitted.boundary_, fitted.low_, N_FEATURES)


def test_load_refuses_other_directories(tmp_path):
    with pytest.raises(ModelError):
        IsolationForestModel.load(tmp_path)


def test_unfitted_model_raises_model_error(data, tmp_path):
    model = IsolationForestModel(FAST)
    for call in (model.score_samples, model.predict, model.contributions):
        with pytest.raises(ModelError, match="not fitted"):
            call(data["test"])
    with pytest.raises(ModelError, match="not fitted"):
        model.save(tmp_path / "x")


def test_nan_and_wrong_width_raise_model_error(fitted, data):
    bad = data["test"][:5].copy()
    bad[2, 1] = np.nan
    with pytest.raises(ModelError, match="NaN"):
        fitted.score_samples(bad)
    with pytest.raises(ModelError, match="NaN"):
        IsolationForestModel(FAST).fit(np.vstack([data["train"], bad]))
    with pytest.raises(ModelError, match="fitted on 4 features, got 3"):
        fitted.score_samples(data["test"][:, :3])
    with pytest.raises(ModelError, match="fitted on 4 features"):
        fitted.contributions(data["test"][:, :3])
    with pytest.raises(ModelError, match="2-d"):
        fitted.score_samples(data["test"][0])
