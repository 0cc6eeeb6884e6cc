"""Autoencoder novelty detector: learns to reconstruct ordinary account-days, flags the ones it reconstructs badly.

Trained on ordinary rows only (rows labelled abusive are dropped from training and validation), with early
stopping on a validation loss and the best epoch's weights checkpointed to disk and loaded back after training.
The decision boundary is the `threshold_quantile` quantile of the per-row reconstruction error on ordinary
validation rows; `ratio_to_unit` maps the error onto 0..1 with that boundary at 0.5.

TensorFlow and Keras are imported inside the methods that need them: importing this module stays cheap.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from surveillance_pipeline.ml.base import (
    BOUNDARY,
    ModelError,
    check_fitted,
    check_matrix,
    ratio_to_unit,
    read_state,
    save_atomically,
    write_state,
)
from surveillance_pipeline.ml.settings import AutoencoderSettings

KIND = "autoencoder"
MODEL_FILE = "model.keras"
MIN_ORDINARY_ROWS = 10
PREDICT_CHUNK = 8192  # rows per forward pass when scoring
ERROR_FLOOR = 1e-12
DEFAULT_SETTINGS = AutoencoderSettings()  # frozen, so one shared default is safe


def _keras():
    """Import Keras on the TensorFlow backend, quietly, the first time a method needs it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    return keras


@contextmanager
def _numpy_copy_warnings_hidden() -> Iterator[None]:
    """Keras converts TF tensors with np.array(x), which NumPy 2 reports once per batch or weight (upstream)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"__array__ implementation doesn't accept a copy keyword",
                                category=DeprecationWarning)
        yield


def _ordinary(X: np.ndarray, y: np.ndarray | None, what: str) -> np.ndarray:
    """The rows of X not labelled abusive (y == 1); all rows when y is None."""
    if y is None:
        return X
    y = np.asarray(y).reshape(-1)
    if y.shape[0] != X.shape[0]:
        raise ModelError(f"{KIND}: {what} has {X.shape[0]} rows but {y.shape[0]} labels")
    return X[y != 1]


class AutoencoderModel:
    """Dense autoencoder over scaled account-day features; the score grows with the reconstruction error."""

    kind = KIND

    def __init__(self, settings: AutoencoderSettings = DEFAULT_SETTINGS) -> None:
        self.settings = settings

    # --- training -------------------------------------------------------------------------------------------

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> AutoencoderModel:
        """Train on the ordinary rows of X; validate on the ordinary rows of X_val (or a held-out share of X)."""
        s = self.settings
        X = check_matrix(X, KIND)
        if X.shape[1] == 0:
            raise ModelError(f"{KIND}: the feature matrix has no columns")
        train = _ordinary(X, y, "X")
        if X_val is not None:
            X_val = check_matrix(X_val, KIND, X.shape[1])
            val = _ordinary(X_val, y_val, "X_val")
        elif y_val is not None:
            raise ModelError(f"{KIND}: y_val given without X_val")
        if train.shape[0] < MIN_ORDINARY_ROWS:
            raise ModelError(f"{KIND}: needs at least {MIN_ORDINARY_ROWS} ordinary rows to train, "
                             f"got {train.shape[0]}")
        if X_val is None:
            order = np.random.default_rng(s.random_state).permutation(train.shape[0])
            n_val = max(1, round(train.shape[0] * s.validation_split))
            val, train = train[order[:n_val]], train[order[n_val:]]
        if val.shape[0] == 0:
            raise ModelError(f"{KIND}: the validation set holds no ordinary rows")

        keras = _keras()
        keras.utils.set_random_seed(s.random_state)
        model = self._build(keras, X.shape[1])
        train32, val32 = train.astype(np.float32), val.astype(np.float32)
        with tempfile.TemporaryDirectory(prefix="autoencoder-") as tmp:
            checkpoint = Path(tmp) / "best.weights.h5"
            callbacks = [
                keras.callbacks.EarlyStopping(monitor="val_loss", patience=s.patience, restore_best_weights=True),
                keras.callbacks.ModelCheckpoint(str(checkpoint), monitor="val_loss", save_best_only=True,
                                                save_weights_only=True),
            ]
            with _numpy_copy_warnings_hidden():
                fitted = model.fit(train32, train32, validation_data=(val32, val32), epochs=s.epochs,
                                   batch_size=s.batch_size, shuffle=True, callbacks=callbacks, verbose=0)
            if not checkpoint.exists():
                raise ModelError(f"{KIND}: training never produced a finite validation loss (diverged?)")
            model.load_weights(str(checkpoint))

        history = {key: [float(v) for v in fitted.history.get(key, [])] for key in ("loss", "val_loss")}
        self.model_ = model
        self.n_features_in_ = int(X.shape[1])
        self.history_ = history
        self.epochs_run_ = len(history["val_loss"])
        self.best_epoch_ = int(np.nanargmin(history["val_loss"])) + 1  # 1-based, as Keras counts epochs
        errors = self._feature_errors(val)
        self.error_scale_ = np.maximum(errors.mean(axis=0), ERROR_FLOOR)
        self.threshold_ = float(np.quantile(errors.mean(axis=1), s.threshold_quantile))
        return self

    def _build(self, keras: Any, n_features: int) -> Any:
        s = self.settings
        inputs = keras.Input(shape=(n_features,), name="features")
        x = inputs
        for i, width in enumerate(s.hidden_layers):
            x = keras.layers.Dense(width, activation=s.activation, name=f"encoder_{i}")(x)
            if s.dropout > 0:
                x = keras.layers.Dropout(s.dropout, name=f"encoder_dropout_{i}")(x)
        x = keras.layers.Dense(s.bottleneck, activation=s.activation, name="bottleneck")(x)
        for i, width in enumerate(reversed(s.hidden_layers)):
            x = keras.layers.Dense(width, activation=s.activation, name=f"decoder_{i}")(x)
            if s.dropout > 0:
                x = keras.layers.Dropout(s.dropout, name=f"decoder_dropout_{i}")(x)
        outputs = keras.layers.Dense(n_features, activation="linear", name="reconstruction")(x)
        model = keras.Model(inputs, outputs, name="autoencoder")
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=s.learning_rate), loss="mse")
        return model

    # --- scoring --------------------------------------------------------------------------------------------

    def _checked(self, X: np.ndarray) -> np.ndarray:
        check_fitted(self, "model_")
        return check_matrix(X, KIND, self.n_features_in_)

    def _feature_errors(self, X: np.ndarray) -> np.ndarray:
        """Squared error per row and feature of an already checked matrix."""
        if X.shape[0] == 0:
            return np.zeros((0, X.shape[1]))
        X32 = X.astype(np.float32)
        parts = [self.model_(X32[i:i + PREDICT_CHUNK], training=False).numpy()
                 for i in range(0, X32.shape[0], PREDICT_CHUNK)]
        reconstruction = np.concatenate(parts).astype(np.float64)
        return (X - reconstruction) ** 2

    def feature_errors(self, X: np.ndarray) -> np.ndarray:
        """Squared reconstruction error per row and feature (rows x features)."""
        return self._feature_errors(self._checked(X))

    def reconstruction_error(self, X: np.ndarray) -> np.ndarray:
        """Mean squared reconstruction error per row."""
        return self.feature_errors(X).mean(axis=1)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Anomaly score per row in 0..1: error / (error + threshold_), 0.5 at the threshold."""
        return ratio_to_unit(self.reconstruction_error(X), self.threshold_)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1 for rows scored at or above 0.5 (error at or above the threshold), else 0."""
        return (self.score_samples(X) >= BOUNDARY).astype(np.int8)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Each feature's squared error relative to its mean squared error on ordinary validation rows."""
        return self.feature_errors(X) / self.error_scale_

    # --- persistence ----------------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write `state.json` and `model.keras` into `directory`, atomically."""
        check_fitted(self, "model_")
        state = {
            "kind": KIND,
            "settings": self.settings.model_dump(mode="json"),
            "n_features_in_": self.n_features_in_,
            "threshold_": self.threshold_,
            "error_scale_": [float(v) for v in self.error_scale_],
            "history_": self.history_,
            "best_epoch_": self.best_epoch_,
            "epochs_run_": self.epochs_run_,
        }

        def write(tmp: Path) -> None:
            write_state(tmp, state)
            with _numpy_copy_warnings_hidden():
                self.model_.save(str(tmp / MODEL_FILE))

        save_atomically(write, Path(directory))

    @classmethod
    def load(cls, directory: Path) -> AutoencoderModel:
        """Read a model written by `save`."""
        directory = Path(directory)
        state = read_state(directory, KIND)
        path = directory / MODEL_FILE
        if not path.exists():
            raise ModelError(f"{directory}: no {MODEL_FILE}: the saved {KIND} model is incomplete")
        keras = _keras()
        model = cls(AutoencoderSettings(**state["settings"]))
        model.model_ = keras.saving.load_model(str(path), compile=False)
        model.n_features_in_ = int(state["n_features_in_"])
        model.threshold_ = float(state["threshold_"])
        model.error_scale_ = np.asarray(state["error_scale_"], dtype=np.float64)
        model.history_ = {key: [float(v) for v in values] for key, values in state["history_"].items()}
        model.best_epoch_ = int(state["best_epoch_"])
        model.epochs_run_ = int(state["epochs_run_"])
        return model
