"""RandomForest classifier of abusive account-days, supervised on labelled episodes."""
from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np

from surveillance_pipeline.ml.base import (
    BOUNDARY,
    ModelError,
    check_fitted,
    check_matrix,
    read_state,
    save_atomically,
    to_unit,
    write_state,
)
from surveillance_pipeline.ml.metrics import best_f1_threshold
from surveillance_pipeline.ml.settings import RandomForestSettings

KIND = "random_forest"
ESTIMATOR_FILE = "estimator.joblib"


def _class_weights(y: np.ndarray) -> dict[int, float]:
    counts = np.bincount(y, minlength=2).astype(np.float64)
    return {label: float(len(y) / (2 * count)) for label, count in enumerate(counts) if count}


class RandomForestModel:
    """P(abusive) per account-day. Class imbalance (a few abusive days among thousands) is met by class
    weights and, optionally, by resampling abusive rows with replacement. The probability cut is the one with
    the best F1 on validation data when given (else 0.5) and is mapped to 0.5 on the 0..1 score.
    `grow` adds trees fitted on new data to a trained forest (warm start) for retraining."""

    kind = KIND

    def __init__(self, settings: RandomForestSettings = RandomForestSettings()) -> None:
        self.settings = settings

    def _resample(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ratio = self.settings.oversample_ratio
        positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        wanted = int(round(ratio * len(negatives))) - len(positives)
        if ratio <= 0 or wanted <= 0:
            return X, y
        extra = np.random.default_rng(self.settings.random_state).choice(positives, size=wanted, replace=True)
        return np.vstack([X, X[extra]]), np.concatenate([y, y[extra]])

    @staticmethod
    def _labels(y, n_rows: int) -> np.ndarray:
        if y is None:
            raise ModelError(f"{KIND}: supervised: needs labels (account-days marked abusive or not)")
        y = np.asarray(y).astype(np.int8)
        if len(y) != n_rows:
            raise ModelError(f"{KIND}: {len(y)} labels for {n_rows} account-days")
        if not 0 < y.sum() < len(y):
            raise ModelError(f"{KIND}: needs both abusive and ordinary account-days in the training data, "
                             f"got {int(y.sum())} abusive of {len(y)}")
        return y

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> RandomForestModel:
        from sklearn.ensemble import RandomForestClassifier

        X = check_matrix(X, KIND)
        y = self._labels(y, X.shape[0])
        s = self.settings
        self.estimator_ = RandomForestClassifier(
            n_estimators=s.n_estimators, max_depth=s.max_depth, min_samples_leaf=s.min_samples_leaf,
            max_features=s.max_features, class_weight=s.class_weight, random_state=s.random_state, n_jobs=-1)
        self.estimator_.fit(*self._resample(X, y))
        self._single_threaded()
        self.n_features_in_ = X.shape[1]
        self._choose_cut(X_val, y_val)
        return self

    def grow(self, X: np.ndarray, y: np.ndarray, extra_trees: int | None = None, *,
             X_val: np.ndarray | None = None, y_val: np.ndarray | None = None) -> RandomForestModel:
        """Warm start: keep the trained trees, add `extra_trees` (default `warm_start_trees`) fitted on (X, y)."""
        check_fitted(self, "estimator_")
        X = check_matrix(X, KIND, self.n_features_in_)
        y = self._labels(y, X.shape[0])
        added = extra_trees or self.settings.warm_start_trees
        # Class weights of the new data itself: the presets would be computed on it anyway, but explicitly.
        weights = _class_weights(y) if self.settings.class_weight else None
        self.estimator_.set_params(warm_start=True, n_estimators=self.estimator_.n_estimators + added,
                                   class_weight=weights)
        self.estimator_.set_params(n_jobs=-1)
        self.estimator_.fit(*self._resample(X, y))
        self.estimator_.set_params(warm_start=False)
        self._single_threaded()
        self._choose_cut(X_val, y_val)
        return self

    def _single_threaded(self) -> None:
        # Fitting uses every core; predicting on one thread sums the trees in a fixed order, so the same rows
        # always get the same probability (threads finishing in any order change the last bits, and a row
        # exactly at the cut would then flip).
        self.estimator_.set_params(n_jobs=1)

    def _choose_cut(self, X_val, y_val) -> None:
        cut = None
        if X_val is not None and y_val is not None and len(y_val):
            cut = best_f1_threshold(y_val, self.probabilities(X_val))
        self.cut_ = float(min(max(cut, 1e-6), 1 - 1e-6)) if cut is not None else 0.5

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        check_fitted(self, "estimator_")
        X = check_matrix(X, KIND, self.n_features_in_)
        classes = list(self.estimator_.classes_)
        return self.estimator_.predict_proba(X)[:, classes.index(1)]

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        return to_unit(self.probabilities(X), self.cut_, 0.0, 1.0)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.score_samples(X) >= BOUNDARY).astype(np.int8)

    @property
    def feature_importances_(self) -> np.ndarray:
        check_fitted(self, "estimator_")
        return self.estimator_.feature_importances_

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per row and feature, how much the feature's splits raised P(abusive) along the row's paths
        (Saabas' decision-path attribution averaged over the trees), negative pushes cut to 0."""
        check_fitted(self, "estimator_")
        X = check_matrix(X, KIND, self.n_features_in_)
        positive = list(self.estimator_.classes_).index(1)
        total = np.zeros_like(X)
        for tree in self.estimator_.estimators_:
            structure = tree.tree_
            values = structure.value[:, 0, :]
            p = values[:, positive] / np.maximum(values.sum(axis=1), 1e-12)
            parent = np.full(structure.node_count, -1)
            for side in (structure.children_left, structure.children_right):
                inner = side >= 0
                parent[side[inner]] = np.flatnonzero(inner)
            delta = np.zeros((structure.node_count, X.shape[1]))
            child = np.flatnonzero(parent >= 0)
            np.add.at(delta, (child, structure.feature[parent[child]]), p[child] - p[parent[child]])
            total += tree.decision_path(X.astype(np.float32)) @ delta
        return np.maximum(total / len(self.estimator_.estimators_), 0.0)

    def save(self, directory: Path) -> None:
        check_fitted(self, "estimator_")

        def write(tmp: Path) -> None:
            joblib.dump(self.estimator_, tmp / ESTIMATOR_FILE)
            write_state(tmp, {"kind": KIND, "settings": self.settings.model_dump(), "cut": self.cut_,
                              "n_features_in": self.n_features_in_})
        save_atomically(write, directory)

    @classmethod
    def load(cls, directory: Path) -> RandomForestModel:
        state = read_state(directory, KIND)
        model = cls(RandomForestSettings(**state["settings"]))
        model.estimator_ = joblib.load(Path(directory) / ESTIMATOR_FILE)
        model.cut_ = state["cut"]
        model.n_features_in_ = state["n_features_in"]
        return model
