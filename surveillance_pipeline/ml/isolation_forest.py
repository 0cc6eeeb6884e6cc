"""IsolationForest (Liu, Ting & Zhou 2008) on account-day features, scores in 0..1, tuned on labelled days."""
from __future__ import annotations

import itertools
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
from surveillance_pipeline.ml.metrics import classification_metrics, metric_value
from surveillance_pipeline.ml.settings import IsolationForestSettings

KIND = "isolation_forest"
ESTIMATOR_FILE = "estimator.joblib"


class IsolationForestModel:
    """Unsupervised: isolates account-days that few random splits separate from the rest.

    The raw measure is the paper's anomaly score s = 2^(-E[h(x)]/c(n)) in (0, 1] (scikit-learn's
    `-score_samples`). The decision boundary is the (1 − contamination) quantile of s over the ordinary
    training account-days, so about `contamination` of ordinary days score ≥ 0.5. Account-days labelled
    abusive are left out of fitting (the forest should learn what ordinary looks like).
    """

    kind = KIND

    def __init__(self, settings: IsolationForestSettings = IsolationForestSettings()) -> None:
        self.settings = settings

    def _estimator(self, n_rows: int, n_estimators: int, max_samples):
        from sklearn.ensemble import IsolationForest

        samples = "auto" if max_samples == "auto" else min(int(max_samples), n_rows)
        return IsolationForest(n_estimators=n_estimators, max_samples=samples, contamination="auto",
                               random_state=self.settings.random_state, n_jobs=-1)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> IsolationForestModel:
        X = check_matrix(X, KIND)
        ordinary = X if y is None else X[np.asarray(y) == 0]
        if ordinary.shape[0] < 10:
            raise ModelError(f"{KIND}: needs at least 10 ordinary account-days to fit, got {ordinary.shape[0]}")
        params = getattr(self, "tuned_params_", None) or {
            "n_estimators": self.settings.n_estimators, "max_samples": self.settings.max_samples,
            "contamination": self.settings.contamination}
        self.params_ = dict(params)
        self.estimator_ = self._estimator(len(ordinary), params["n_estimators"], params["max_samples"])
        self.estimator_.fit(ordinary)
        raw = -self.estimator_.score_samples(ordinary)
        self.boundary_ = float(np.quantile(raw, 1.0 - params["contamination"]))
        self.low_ = float(raw.min())
        self.center_ = np.median(ordinary, axis=0)
        spread = np.subtract(*np.quantile(ordinary, [0.75, 0.25], axis=0))
        self.spread_ = np.where(spread > 0, spread, 1.0)
        self.n_features_in_ = X.shape[1]
        return self

    def tune(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> list[dict]:
        """Cross-validated choice of n_estimators, max_samples and contamination on labelled account-days.

        Folds are contiguous blocks of `groups` (days), so a fold never scores days its forest was fitted on.
        Each (n_estimators, max_samples) is judged by mean average precision over the folds, then the
        contamination by mean F1 at its cut. Returns every combination's figures; the winner is kept in
        `tuned_params_` and used by the next `fit`. Without both classes there is nothing to tune on.
        """
        X = check_matrix(X, KIND)
        y = np.asarray(y, dtype=np.int8)
        days = np.unique(groups)
        folds = [block for block in np.array_split(days, min(self.settings.tune_folds, len(days))) if len(block)]
        if len(folds) < 2 or not 0 < y.sum() < len(y):
            raise ModelError(f"{KIND}: tuning needs labelled abuse and ordinary account-days over at least 2 days")
        results = []
        for n_estimators, max_samples in itertools.product(self.settings.tune_n_estimators,
                                                           self.settings.tune_max_samples):
            per_fold = []
            for block in folds:
                held = np.isin(groups, block)
                fit_rows = X[~held & (y == 0)]
                if len(fit_rows) < 10 or not 0 < y[held].sum() < held.sum():
                    continue
                forest = self._estimator(len(fit_rows), n_estimators, max_samples).fit(fit_rows)
                train_raw = -forest.score_samples(fit_rows)
                raw = -forest.score_samples(X[held])
                low = float(train_raw.min())
                entry = {"average_precision": classification_metrics(y[held], raw, 1.0)["average_precision"]}
                for contamination in self.settings.tune_contamination:
                    boundary = float(np.quantile(train_raw, 1.0 - contamination))
                    entry[contamination] = classification_metrics(y[held], to_unit(raw, boundary, low, 1.0))["f1"]
                per_fold.append(entry)
            if not per_fold:
                continue
            for contamination in self.settings.tune_contamination:
                results.append({
                    "n_estimators": n_estimators, "max_samples": max_samples, "contamination": contamination,
                    "average_precision": float(np.mean([metric_value(f, "average_precision") for f in per_fold])),
                    "f1": float(np.mean([f[contamination] or 0.0 for f in per_fold])), "folds": len(per_fold)})
        if not results:
            raise ModelError(f"{KIND}: no fold had both labelled abuse and ordinary account-days")
        best = max(results, key=lambda r: (r["average_precision"], r["f1"]))
        self.tuned_params_ = {k: best[k] for k in ("n_estimators", "max_samples", "contamination")}
        self.tuning_ = results
        return results

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        check_fitted(self, "estimator_")
        return -self.estimator_.score_samples(check_matrix(X, KIND, self.n_features_in_))

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        return to_unit(self.raw_scores(X), self.boundary_, self.low_, 1.0)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.score_samples(X) >= BOUNDARY).astype(np.int8)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Distance of each feature from the ordinary training median, in interquartile ranges."""
        check_fitted(self, "estimator_")
        X = check_matrix(X, KIND, self.n_features_in_)
        return np.abs(X - self.center_) / self.spread_

    def save(self, directory: Path) -> None:
        check_fitted(self, "estimator_")

        def write(tmp: Path) -> None:
            joblib.dump(self.estimator_, tmp / ESTIMATOR_FILE)
            write_state(tmp, {"kind": KIND, "settings": self.settings.model_dump(), "params": self.params_,
                              "boundary": self.boundary_, "low": self.low_, "center": self.center_.tolist(),
                              "spread": self.spread_.tolist(), "n_features_in": self.n_features_in_,
                              "tuning": getattr(self, "tuning_", None)})
        save_atomically(write, directory)

    @classmethod
    def load(cls, directory: Path) -> IsolationForestModel:
        state = read_state(directory, KIND)
        model = cls(IsolationForestSettings(**state["settings"]))
        model.estimator_ = joblib.load(Path(directory) / ESTIMATOR_FILE)
        model.params_ = state["params"]
        model.boundary_, model.low_ = state["boundary"], state["low"]
        model.center_, model.spread_ = np.asarray(state["center"]), np.asarray(state["spread"])
        model.n_features_in_ = state["n_features_in"]
        if state.get("tuning"):
            model.tuning_ = state["tuning"]
            model.tuned_params_ = dict(state["params"])  # a re-fit after loading keeps the tuned choice
        return model
