import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score

from surveillance_pipeline.ml.base import ModelError, SurveillanceModel, to_unit
from surveillance_pipeline.ml.metrics import best_f1_threshold
from surveillance_pipeline.ml.random_forest import RandomForestModel
from surveillance_pipeline.ml.settings import RandomForestSettings

N_FEATURES = 4
FAST = RandomForestSettings(n_estimators=30, warm_start_trees=10, random_state=0)


def labelled(rng, n, flip=0.05):
    """x0 uniform on 0..2, abusive when x0 > 1.5 (a quarter of the rows); x1..x3 noise; `flip` of labels flipped."""
    X = rng.normal(size=(n, N_FEATURES))
    X[:, 0] = rng.uniform(0.0, 2.0, size=n)
    y = (X[:, 0] > 1.5).astype(np.int8)
    flipped = rng.random(n) < flip
    y[flipped] = 1 - y[flipped]
    return X, y


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return {name: labelled(rng, n) for name, n in (("train", 400), ("val", 200), ("test", 200))}


@pytest.fixture(scope="module")
def fitted(data):
    (X, y), (X_val, y_val) = data["train"], data["val"]
    return RandomForestModel(FAST).fit(X, y, X_val=X_val, y_val=y_val)


def test_learns_a_separable_rule(fitted, data):
    assert isinstance(fitted, SurveillanceModel)
    X_test, y_test = data["test"]
    clean = (X_test[:, 0] > 1.5).astype(np.int8)  # the rule itself, without the flipped labels
    scores = fitted.score_samples(X_test)
    assert roc_auc_score(clean, scores) > 0.97
    assert roc_auc_score(y_test, scores) > 0.85
    assert (fitted.predict(X_test) == clean).mean() > 0.95
    assert scores.min() >= 0.0 and scores.max() <= 1.0


def test_fit_needs_labels_of_both_classes(data):
    X, y = data["train"]
    with pytest.raises(ModelError, match="random_forest.*labels"):
        RandomForestModel(FAST).fit(X)
    with pytest.raises(ModelError, match="random_forest.*both"):
        RandomForestModel(FAST).fit(X, np.zeros(len(X)))
    with pytest.raises(ModelError, match="random_forest.*both"):
        RandomForestModel(FAST).fit(X, np.ones(len(X)))
    with pytest.raises(ModelError, match="random_forest"):
        RandomForestModel(FAST).fit(X, y[:-1])


def test_the_validation_cut_is_mapped_to_half(fitted, data):
    X_val, y_val = data["val"]
    probabilities = fitted.probabilities(X_val)
    assert fitted.cut_ == pytest.approx(best_f1_threshold(y_val, probabilities), abs=1e-12)
    assert 0.0 < fitted.cut_ < 1.0 and fitted.cut_ != pytest.approx(0.5, abs=0.01)  # a real choice, not 0.5
    at_cut = np.isclose(probabilities, fitted.cut_, rtol=0.0, atol=1e-12)
    assert at_cut.any()
    np.testing.assert_allclose(fitted.score_samples(X_val)[at_cut], 0.5, rtol=0.0, atol=1e-9)
    X_test, _ = data["test"]
    p = fitted.probabilities(X_test)
    np.testing.assert_allclose(fitted.score_samples(X_test), to_unit(p, fitted.cut_, 0.0, 1.0), rtol=0.0, atol=1e-9)
    away = np.abs(p - fitted.cut_) > 1e-9
    np.testing.assert_array_equal(fitted.predict(X_test)[away], (p >= fitted.cut_)[away].astype(np.int8))
    assert fitted.predict(X_test).dtype == np.int8


def test_without_validation_data_the_cut_is_half_and_scores_are_probabilities(data):
    X, y = data["train"]
    model = RandomForestModel(FAST).fit(X, y)
    assert model.cut_ == 0.5
    np.testing.assert_allclose(model.score_samples(X), model.probabilities(X))
    one_class = RandomForestModel(FAST).fit(X, y, X_val=X[y == 0], y_val=y[y == 0])
    assert one_class.cut_ == 0.5


@pytest.fixture
def fitted_rows(monkeypatch):
    """The (X, y) every RandomForestClassifier.fit receives during the test."""
    seen = []
    original = RandomForestClassifier.fit

    def recording_fit(self, X, y, *args, **kwargs):
        seen.append((np.asarray(X).copy(), np.asarray(y).copy()))
        return original(self, X, y, *args, **kwargs)

    monkeypatch.setattr(RandomForestClassifier, "fit", recording_fit)
    return seen


def test_oversampling_resamples_abusive_rows_up_to_the_ratio(data, fitted_rows):
    X, y = data["train"]
    positives, negatives = int(y.sum()), int((y == 0).sum())
    RandomForestModel(FAST.model_copy(update={"oversample_ratio": 0.8})).fit(X, y)
    (X_fit, y_fit), = fitted_rows
    wanted = round(0.8 * negatives)
    assert wanted > positives
    assert len(y_fit) == len(y) + wanted - positives
    assert int(y_fit.sum()) == wanted and int((y_fit == 0).sum()) == negatives
    np.testing.assert_array_equal(X_fit[: len(X)], X)  # the original rows first, then the copies
    originals = {row.tobytes() for row in X[y == 1]}
    assert all(row.tobytes() in originals for row in X_fit[len(X):])


def test_no_oversampling_by_default_or_when_abuse_is_already_common(data, fitted_rows):
    X, y = data["train"]
    RandomForestModel(FAST).fit(X, y)
    RandomForestModel(FAST.model_copy(update={"oversample_ratio": 0.1})).fit(X, y)  # 0.1 * ordinary < abusive
    assert [len(y_fit) for _, y_fit in fitted_rows] == [len(y), len(y)]


def test_grow_adds_trees_and_keeps_the_old_ones(data):
    X, y = data["train"]
    model = RandomForestModel(FAST).fit(X, y)
    old = list(model.estimator_.estimators_)
    X_new, y_new = labelled(np.random.default_rng(7), 200)
    model.grow(X_new, y_new)
    trees = model.estimator_.estimators_
    assert len(trees) == FAST.n_estimators + FAST.warm_start_trees
    assert all(a is b for a, b in zip(old, trees[: len(old)]))
    model.grow(X_new, y_new, extra_trees=5)
    assert len(model.estimator_.estimators_) == FAST.n_estimators + FAST.warm_start_trees + 5
    assert all(a is b for a, b in zip(old, model.estimator_.estimators_))
    assert model.estimator_.warm_start is False
    X_test, y_test = data["test"]
    assert roc_auc_score((X_test[:, 0] > 1.5), model.score_samples(X_test)) > 0.97


def test_grow_chooses_a_new_cut_on_validation_data(data):
    X, y = data["train"]
    X_val, y_val = data["val"]
    model = RandomForestModel(FAST).fit(X, y)
    model.grow(X, y, X_val=X_val, y_val=y_val)
    assert model.cut_ == pytest.approx(best_f1_threshold(y_val, model.probabilities(X_val)), abs=1e-12)


def test_grow_needs_a_fitted_forest_and_labels(data):
    X, y = data["train"]
    with pytest.raises(ModelError, match="not fitted"):
        RandomForestModel(FAST).grow(X, y)
    model = RandomForestModel(FAST).fit(X, y)
    with pytest.raises(ModelError, match="random_forest.*both"):
        model.grow(X, np.zeros(len(X)))
    with pytest.raises(ModelError, match="fitted on 4 features"):
        model.grow(X[:, :2], y)


def test_feature_importances_favour_the_informative_feature(fitted):
    importances = fitted.feature_importances_
    assert importances.shape == (N_FEATURES,)
    assert importances.argmax() == 0
    assert importances[0] > 0.5


def test_contributions_are_non_negative_and_point_at_the_informative_feature(fitted, data):
    X_test, _ = data["test"]
    contributions = fitted.contributions(X_test)
    assert contributions.shape == X_test.shape
    assert (contributions >= 0).all()
    positive = X_test[:, 0] > 1.5
    assert contributions[positive].mean(axis=0).argmax() == 0
    assert (contributions[positive].argmax(axis=1) == 0).mean() > 0.9
    # Saabas: the per-feature pushes of a path add up to P(leaf) - P(root); cutting the negative ones off can only
    # raise the sum.
    root = np.mean([tree.tree_.value[0, 0, 1] / tree.tree_.value[0, 0].sum() for tree in fitted.estimator_.estimators_])
    assert (contributions.sum(axis=1) >= fitted.probabilities(X_test) - root - 1e-9).all()


def test_contributions_of_a_single_feature_forest_are_probability_above_the_root():
    X, y = labelled(np.random.default_rng(3), 300)
    X = X[:, :1]
    model = RandomForestModel(FAST).fit(X, y)
    root = np.mean([tree.tree_.value[0, 0, 1] / tree.tree_.value[0, 0].sum() for tree in model.estimator_.estimators_])
    expected = np.maximum(model.probabilities(X) - root, 0.0)
    np.testing.assert_allclose(model.contributions(X)[:, 0], expected, atol=1e-9)


def test_save_load_round_trip_is_identical(fitted, data, tmp_path):
    fitted.save(tmp_path / "rf")
    loaded = RandomForestModel.load(tmp_path / "rf")
    X_test, _ = data["test"]
    assert loaded.cut_ == fitted.cut_ and loaded.settings == fitted.settings
    assert loaded.n_features_in_ == N_FEATURES
    np.testing.assert_allclose(loaded.probabilities(X_test), fitted.probabilities(X_test), rtol=0.0, atol=1e-12)
    np.testing.assert_allclose(loaded.score_samples(X_test), fitted.score_samples(X_test), rtol=0.0, atol=1e-12)
    np.testing.assert_array_equal(loaded.contributions(X_test), fitted.contributions(X_test))


def test_unfitted_model_and_bad_matrices_raise_model_error(fitted, data, tmp_path):
    X_test, _ = data["test"]
    model = RandomForestModel(FAST)
    for call in (model.score_samples, model.probabilities, model.contributions):
        with pytest.raises(ModelError, match="not fitted"):
            call(X_test)
    with pytest.raises(ModelError, match="not fitted"):
        model.feature_importances_
    with pytest.raises(ModelError, match="not fitted"):
        model.save(tmp_path / "x")
    bad = X_test[:3].copy()
    bad[0, 0] = np.inf
    with pytest.raises(ModelError, match="NaN or infinite"):
        fitted.score_samples(bad)
    with pytest.raises(ModelError, match="fitted on 4 features, got 5"):
        fitted.score_samples(np.hstack([X_test, X_test[:, :1]]))


# -- scores are reproducible: the forest predicts on one thread (threads summing trees in any order changed
#    the last bits, and a row exactly at the cut flipped between calls) ------------------------------------------

def test_scoring_the_same_rows_twice_gives_identical_scores(fitted, data):
    X_test, _ = data["test"]
    first = fitted.score_samples(X_test)
    for _ in range(20):
        np.testing.assert_array_equal(fitted.score_samples(X_test), first)

