"""What every model here shares: scikit-learn conventions, scores in 0..1 with the decision boundary at 0.5,
per-feature contributions for explanations, and a directory format of its own (JSON state + the estimator).

Scores of different models are made comparable by one rule: each model maps its raw anomaly measure
monotonically onto 0..1 so that its own decision boundary (IsolationForest's contamination cut, the
autoencoder's validation-error quantile, the forest's probability cut chosen on validation) lands on 0.5.
The ensemble's weighted vote of such scores is then a weighted mean in which 0.5 means "at the boundary".
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

STATE_FILE = "state.json"
BOUNDARY = 0.5


class ModelError(RuntimeError):
    """A model that cannot be trained, loaded or used, naming the model and why."""


@runtime_checkable
class SurveillanceModel(Protocol):
    """fit / score_samples / predict in scikit-learn's manner; learned state ends with `_`."""

    kind: str

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> SurveillanceModel: ...

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Anomaly (or abuse) score per row in 0..1, 0.5 at the model's decision boundary."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1 for rows at or above the boundary, else 0."""

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per row and feature, how much the feature pushes the row towards anomalous (>= 0, rows x features)."""

    def save(self, directory: Path) -> None: ...


def to_unit(raw: np.ndarray, boundary: float, low: float, high: float) -> np.ndarray:
    """Piecewise-linear, monotone map of raw scores onto 0..1: low -> 0, boundary -> 0.5, high -> 1 (clipped)."""
    raw = np.asarray(raw, dtype=np.float64)
    below = BOUNDARY * (raw - low) / max(boundary - low, 1e-12)
    above = BOUNDARY + BOUNDARY * (raw - boundary) / max(high - boundary, 1e-12)
    return np.clip(np.where(raw < boundary, below, above), 0.0, 1.0)


def ratio_to_unit(raw: np.ndarray, boundary: float) -> np.ndarray:
    """For unbounded non-negative measures (reconstruction error): raw / (raw + boundary), 0.5 at the boundary."""
    raw = np.maximum(np.asarray(raw, dtype=np.float64), 0.0)
    return raw / (raw + max(boundary, 1e-12))


def check_matrix(X: np.ndarray, model: str, n_features: int | None = None) -> np.ndarray:
    """A finite float matrix with the fitted width, or a ModelError naming the model."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ModelError(f"{model}: expected a 2-d matrix of features, got shape {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise ModelError(f"{model}: fitted on {n_features} features, got {X.shape[1]}")
    if not np.isfinite(X).all():
        raise ModelError(f"{model}: the feature matrix holds NaN or infinite values (scale it with the "
                         "FeatureExtractor first)")
    return X


def check_fitted(model: object, attribute: str) -> None:
    if not hasattr(model, attribute):
        raise ModelError(f"{type(model).__name__} is not fitted: call fit() first")


def write_state(directory: Path, state: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / STATE_FILE).write_text(json.dumps(state, indent=2, sort_keys=True, default=float))


def read_state(directory: Path, kind: str) -> dict:
    path = Path(directory) / STATE_FILE
    if not path.exists():
        raise ModelError(f"{directory}: no {STATE_FILE}: not a saved {kind} model")
    state = json.loads(path.read_text())
    if state.get("kind") != kind:
        raise ModelError(f"{directory}: holds a {state.get('kind')!r} model, not {kind!r}")
    return state


def save_atomically(save, directory: Path) -> None:
    """Run `save(tmp_dir)` and move the finished directory into place: a crash leaves no half-written model."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        save(tmp)
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
