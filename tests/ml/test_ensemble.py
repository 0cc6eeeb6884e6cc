import pickle
from pathlib import Path

import numpy as np
import pytest

from surveillance_pipeline.ml.base import ModelError
from surveillance_pipeline.ml.ensemble import ModelEnsemble, weighted_vote
from surveillance_pipeline.ml.isolation_forest import IsolationForestModel
from surveillance_pipeline.ml.metrics import best_f1_threshold, classification_metrics
from surveillance_pipeline.ml.settings import EnsembleSettings, IsolationForestSettings

X = np.zeros((4, 2))  # the fake members ignore their input


class Fixed:
    """A member whose scores do not depend on the rows."""

    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=np.float64)

    def score_samples(self, X):
        return self.scores


class Column:
    """A member that scores a column of its own matrix (shows which matrix it was given)."""

    def __init__(self, column):
        self.column = column

    def score_samples(self, X):
        return np.asarray(X)[:, self.column]


class Broken:
    def score_samples(self, X):
        raise RuntimeError("boom")


def save_pickle(member, path: Path) -> None:
    path.mkdir(parents=True)
    (path / "member.pkl").write_bytes(pickle.dumps(member))


def load_pickle(path: Path):
    return pickle.loads((path / "member.pkl").read_bytes())


# -- weighted_vote -----------------------------------------------------------------------------------------------

def test_weighted_vote_is_a_weighted_mean_renormalised_over_the_models_present():
    per_model = {"a": np.array([0.2, 1.0, 0.0]), "b": np.array([0.6, 0.0, 0.8])}
    score, used = weighted_vote(per_model, {"a": 1.0, "b": 3.0, "c": 4.0})  # c gave no scores
    assert used == pytest.approx({"a": 0.25, "b": 0.75})
    # 0.25 * a + 0.75 * b
    np.testing.assert_allclose(score, [0.05 + 0.45, 0.25 + 0.0, 0.0 + 0.6])


def test_weighted_vote_ignores_models_without_weight():
    per_model = {"a": np.array([0.2, 0.4]), "b": np.array([1.0, 1.0]), "z": np.array([0.0, 0.0])}
    score, used = weighted_vote(per_model, {"a": 2.0, "b": 0.0})  # b weighted 0, z not weighted at all
    assert used == {"a": 1.0}
    np.testing.assert_allclose(score, [0.2, 0.4])


def test_weighted_vote_without_any_weighted_model_raises():
    with pytest.raises(ModelError, match="none of the weighted models"):
        weighted_vote({"a": np.array([0.5])}, {"b": 1.0})


# -- ModelEnsemble.score -----------------------------------------------------------------------------------------

def test_score_is_the_weighted_vote_of_all_members():
    ensemble = ModelEnsemble({"a": Fixed([0.0, 0.2, 0.4, 1.0]), "b": Fixed([1.0, 0.8, 0.4, 0.0])},
                             weights={"a": 3.0, "b": 1.0})
    result = ensemble.score(X)
    np.testing.assert_allclose(result.score, [0.25, 0.35, 0.4, 0.75])
    assert result.weights == pytest.approx({"a": 0.75, "b": 0.25})
    assert result.models == ["a", "b"] and result.failed == {}
    np.testing.assert_array_equal(result.per_model["b"], [1.0, 0.8, 0.4, 0.0])
    assert ensemble.threshold == 0.5  # the settings' default
    np.testing.assert_array_equal(ensemble.predict(X), [0, 0, 0, 1])


def test_a_member_that_raises_is_left_out_and_named():
    ensemble = ModelEnsemble({"a": Fixed([0.2, 1.0, 0.0, 0.4]), "b": Fixed([0.6, 0.0, 0.8, 0.4]), "c": Broken()},
                             weights={"a": 1.0, "b": 3.0, "c": 4.0})
    result = ensemble.score(X)
    assert result.failed == {"c": "RuntimeError: boom"}
    assert result.models == ["a", "b"]
    assert result.weights == pytest.approx({"a": 0.25, "b": 0.75})
    np.testing.assert_allclose(result.score, [0.5, 0.25, 0.6, 0.4])


def test_a_weighted_member_that_is_missing_is_reported_as_not_available():
    ensemble = ModelEnsemble({"a": Fixed([0.1, 0.2, 0.3, 0.9])}, weights={"a": 1.0, "d": 2.0, "e": 0.0})
    result = ensemble.score(X)
    assert result.failed == {"d": "model not available"}  # e has no weight: not expected to take part
    assert result.models == ["a"] and result.weights == {"a": 1.0}
    np.testing.assert_allclose(result.score, [0.1, 0.2, 0.3, 0.9])


def test_members_without_weight_are_not_asked():
    ensemble = ModelEnsemble({"a": Fixed([0.3] * 4), "c": Broken()}, weights={"a": 1.0, "c": 0.0})
    result = ensemble.score(X)
    assert result.failed == {} and result.models == ["a"]


def test_each_member_gets_its_own_matrix():
    ensemble = ModelEnsemble({"a": Column(0), "b": Column(1), "c": Column(0)},
                             weights={"a": 1.0, "b": 1.0, "c": 1.0})
    result = ensemble.score({"a": np.array([[0.2, 0.0]]), "b": np.array([[0.0, 0.6]])})
    assert result.failed == {"c": "no features for this model"}
    np.testing.assert_allclose(result.per_model["a"], [0.2])
    np.testing.assert_allclose(result.per_model["b"], [0.6])
    np.testing.assert_allclose(result.score, [0.4])


def test_no_member_able_to_score_raises_model_error_naming_each():
    ensemble = ModelEnsemble({"a": Broken(), "b": Broken()}, weights={"a": 1.0, "b": 1.0, "x": 1.0})
    with pytest.raises(ModelError, match="no member model could score") as raised:
        ensemble.score(X)
    message = str(raised.value)
    assert "a: RuntimeError: boom" in message and "b: RuntimeError: boom" in message
    assert "x: model not available" in message
    with pytest.raises(ModelError):
        ModelEnsemble({}, weights={"a": 1.0}).score(X)


def test_default_weights_come_from_the_settings():
    settings = EnsembleSettings(weights={"isolation_forest": 1.0, "random_forest": 3.0})
    ensemble = ModelEnsemble({"isolation_forest": Fixed([0.0] * 4), "random_forest": Fixed([1.0] * 4)}, settings)
    assert ensemble.weights == {"isolation_forest": 1.0, "random_forest": 3.0}
    np.testing.assert_allclose(ensemble.score(X).score, [0.75] * 4)


# -- tune_weights -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def validation():
    """A perfect model by a narrow margin (positives 0.6, negatives 0.4) and a random one."""
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(30), np.zeros(170)].astype(np.int8)
    perfect = np.where(y == 1, 0.6, 0.4)
    noise = rng.random(len(y))
    return {"perfect": perfect, "noise": noise}, y


def average_precision(per_model, y, weights):
    score, _ = weighted_vote(per_model, weights)
    return classification_metrics(y, score)["average_precision"]


def test_tune_weights_gives_the_perfect_model_the_most_weight(validation):
    per_model, y = validation
    settings = EnsembleSettings(weight_grid_step=0.1, min_weight=0.1, tune_threshold=False)
    ensemble = ModelEnsemble({}, settings, weights={"perfect": 1.0, "noise": 1.0})
    candidates = ensemble.tune_weights(per_model, y, "average_precision")
    assert len(candidates) == 9  # perfect 0.1 .. 0.9 in steps of 0.1
    assert sum(ensemble.weights.values()) == pytest.approx(1.0)
    assert ensemble.weights["perfect"] > ensemble.weights["noise"]
    # the chosen weights maximise the metric over the whole grid (computed here independently)
    chosen = average_precision(per_model, y, ensemble.weights)
    for c in candidates:
        assert c["value"] == pytest.approx(average_precision(per_model, y, c["weights"]))
        assert chosen >= c["value"] - 1e-12
    assert chosen == pytest.approx(1.0)
    assert average_precision(per_model, y, {"perfect": 0.5, "noise": 0.5}) < 0.9  # equal weights are not enough
    assert ensemble.threshold == 0.5  # not tuned


def test_ties_go_to_the_weights_closest_to_equal():
    y = np.array([1, 1, 0, 0, 0], dtype=np.int8)
    per_model = {"a": np.array([0.9, 0.8, 0.1, 0.2, 0.3]), "b": np.array([0.7, 0.9, 0.2, 0.1, 0.3])}  # both perfect
    ensemble = ModelEnsemble({}, EnsembleSettings(tune_threshold=False), weights={"a": 1.0, "b": 1.0})
    ensemble.tune_weights(per_model, y, "auc_roc")
    assert ensemble.weights == pytest.approx({"a": 0.5, "b": 0.5})


@pytest.mark.parametrize("min_weight", [0.0, 0.1, 0.3])
def test_tune_weights_respects_min_weight(validation, min_weight):
    per_model, y = validation
    per_model = {**per_model, "inverse": 1.0 - per_model["perfect"]}  # the worst model: best left at min_weight
    settings = EnsembleSettings(weight_grid_step=0.1, min_weight=min_weight, tune_threshold=False)
    ensemble = ModelEnsemble({}, settings)
    candidates = ensemble.tune_weights(per_model, y, "average_precision")
    assert candidates
    assert all(min(c["weights"].values()) >= min_weight - 1e-9 for c in candidates)
    assert all(sum(c["weights"].values()) == pytest.approx(1.0) for c in candidates)
    assert set(ensemble.weights) == {"perfect", "noise", "inverse"}
    assert min(ensemble.weights.values()) >= min_weight - 1e-9
    assert max(ensemble.weights, key=ensemble.weights.get) == "perfect"
    steps = 10
    expected = sum(1 for a in range(steps + 1) for b in range(steps + 1 - a)
                   if min(a, b, steps - a - b) / steps >= min_weight - 1e-9)
    assert len(candidates) == expected


@pytest.mark.parametrize("best_cut, expected", [(0.45, 0.45), (0.9, 0.7), (0.1, 0.3)])
def test_tuned_threshold_stays_within_the_range(best_cut, expected):
    # Scores with the best F1 cut at `best_cut`: the positives are exactly the rows at or above it.
    scores = np.array([best_cut - 0.05, best_cut - 0.02, best_cut, best_cut + 0.03, best_cut + 0.05])
    y = np.array([0, 0, 1, 1, 1], dtype=np.int8)
    assert best_f1_threshold(y, scores) == pytest.approx(best_cut)
    ensemble = ModelEnsemble({}, EnsembleSettings(threshold_range=(0.3, 0.7)), weights={"a": 1.0})
    ensemble.tune_weights({"a": scores}, y, "f1")
    assert ensemble.threshold == pytest.approx(expected)


def test_tuned_threshold_of_a_vote_is_its_best_f1_cut_within_the_range(validation):
    per_model, y = validation
    settings = EnsembleSettings(weight_grid_step=0.1, min_weight=0.1, threshold_range=(0.35, 0.65))
    ensemble = ModelEnsemble({}, settings)
    ensemble.tune_weights(per_model, y, "average_precision")
    vote, _ = weighted_vote(per_model, ensemble.weights)
    assert 0.35 <= ensemble.threshold <= 0.65
    assert ensemble.threshold == pytest.approx(min(max(best_f1_threshold(y, vote), 0.35), 0.65))


def test_tune_weights_without_candidates_raises():
    settings = EnsembleSettings(weight_grid_step=0.5, min_weight=0.3)  # 3 models, steps of 0.5: none >= 0.3 each
    ensemble = ModelEnsemble({}, settings)
    scores = {name: np.array([0.1, 0.9]) for name in ("a", "b", "c")}
    with pytest.raises(ModelError, match="no weights"):
        ensemble.tune_weights(scores, np.array([0, 1]), "f1")


# -- persistence --------------------------------------------------------------------------------------------------

def test_save_load_round_trip_with_callbacks(tmp_path):
    settings = EnsembleSettings(min_weight=0.2, threshold_range=(0.4, 0.6))
    ensemble = ModelEnsemble({"a": Fixed([0.1, 0.5, 0.7, 0.9]), "b": Fixed([0.3, 0.3, 0.9, 0.2])}, settings,
                             weights={"a": 0.7, "b": 0.3}, threshold=0.55)
    ensemble.save(tmp_path / "ens", save_pickle)
    assert sorted(p.name for p in (tmp_path / "ens").iterdir()) == ["a", "b", "state.json"]
    loaded = ModelEnsemble.load(tmp_path / "ens", load_pickle)
    assert sorted(loaded.members) == ["a", "b"]
    assert loaded.weights == {"a": 0.7, "b": 0.3}
    assert loaded.threshold == 0.55
    assert loaded.settings == settings
    before, after = ensemble.score(X), loaded.score(X)
    np.testing.assert_array_equal(after.score, before.score)
    assert after.weights == before.weights
    np.testing.assert_array_equal(loaded.predict(X), ensemble.predict(X))


def test_save_load_round_trip_with_isolation_forest_members(tmp_path):
    rng = np.random.default_rng(0)
    train, rows = rng.normal(size=(200, 3)), rng.normal(size=(50, 3)) * 2
    settings = IsolationForestSettings(n_estimators=25)
    members = {"if_a": IsolationForestModel(settings).fit(train),
               "if_b": IsolationForestModel(settings.model_copy(update={"contamination": 0.2})).fit(train)}
    ensemble = ModelEnsemble(members, weights={"if_a": 2.0, "if_b": 1.0})
    ensemble.save(tmp_path / "ens", lambda member, path: member.save(path))
    loaded = ModelEnsemble.load(tmp_path / "ens", IsolationForestModel.load)
    assert all(isinstance(m, IsolationForestModel) for m in loaded.members.values())
    before, after = ensemble.score(rows), loaded.score(rows)
    np.testing.assert_array_equal(after.score, before.score)
    for name in members:
        np.testing.assert_array_equal(after.per_model[name], before.per_model[name])


def test_load_refuses_a_directory_without_an_ensemble(tmp_path):
    with pytest.raises(ModelError):
        ModelEnsemble.load(tmp_path, load_pickle)
