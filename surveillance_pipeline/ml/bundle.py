"""A trained model together with the FeatureExtractor it was trained with: what is saved, registered in
MLflow and loaded back to score feature tables. An ensemble bundle holds one such bundle per member."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from surveillance_pipeline.features.base import ACCOUNT, DATE
from surveillance_pipeline.features.extractor import FeatureExtractor
from surveillance_pipeline.ml.base import STATE_FILE, ModelError, save_atomically
from surveillance_pipeline.ml.ensemble import MODELS_SEPARATOR, ModelEnsemble
from surveillance_pipeline.ml.settings import EnsembleSettings

EXTRACTOR_FILE = "extractor.json"
MODEL_DIR = "model"
TOP_FEATURES = 3
SCORE_SCHEMA = {ACCOUNT: pl.String, DATE: pl.Date, "score": pl.Float64, "anomalous": pl.Boolean,
                "models": pl.String, "top_features": pl.String}


def load_model(directory: Path):
    """Any saved model, by the kind its state.json names."""
    path = Path(directory) / STATE_FILE
    if not path.exists():
        raise ModelError(f"{directory}: no saved model here ({STATE_FILE} missing)")
    kind = json.loads(path.read_text()).get("kind")
    if kind == "isolation_forest":
        from surveillance_pipeline.ml.isolation_forest import IsolationForestModel
        return IsolationForestModel.load(directory)
    if kind == "random_forest":
        from surveillance_pipeline.ml.random_forest import RandomForestModel
        return RandomForestModel.load(directory)
    if kind == "autoencoder":
        from surveillance_pipeline.ml.autoencoder import AutoencoderModel
        return AutoencoderModel.load(directory)
    raise ModelError(f"{directory}: unknown model kind {kind!r}")


def _top_features(contributions: np.ndarray, names: list[str], k: int = TOP_FEATURES) -> list[str]:
    base = [name.removesuffix("_missing") for name in names]
    order = np.argsort(-contributions, axis=1, kind="stable")[:, : k * 2]
    rows = []
    for row, ranked in zip(contributions, order):
        picked: list[str] = []
        for index in ranked:
            if row[index] > 0 and base[index] not in picked:
                picked.append(base[index])
            if len(picked) == k:
                break
        rows.append(MODELS_SEPARATOR.join(picked))
    return rows


def _normalised(contributions: np.ndarray) -> np.ndarray:
    totals = contributions.sum(axis=1, keepdims=True)
    return np.divide(contributions, totals, out=np.zeros_like(contributions), where=totals > 0)


class ModelBundle:
    """One model + its extractor. `score_samples` / `contributions` take a feature table (account-days)."""

    def __init__(self, model, extractor: FeatureExtractor) -> None:
        self.model = model
        self.extractor = extractor

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def feature_names(self) -> list[str]:
        return self.extractor.output_names_

    def matrix(self, table: pl.DataFrame) -> np.ndarray:
        return self.extractor.transform(table).select(self.feature_names).to_numpy().astype(np.float64)

    def score_samples(self, table: pl.DataFrame) -> np.ndarray:
        return self.model.score_samples(self.matrix(table))

    def contributions(self, table: pl.DataFrame) -> np.ndarray:
        return self.model.contributions(self.matrix(table))

    def score_table(self, table: pl.DataFrame) -> pl.DataFrame:
        scores = self.score_samples(table)
        return _score_frame(table, scores, {self.kind: scores}, [self.kind],
                            _top_features(self.contributions(table), self.feature_names), threshold=0.5)

    def save(self, directory: Path) -> None:
        def write(tmp: Path) -> None:
            (tmp / EXTRACTOR_FILE).write_text(self.extractor.to_json())
            self.model.save(tmp / MODEL_DIR)
        save_atomically(write, directory)

    @classmethod
    def load(cls, directory: Path) -> ModelBundle:
        directory = Path(directory)
        if not (directory / EXTRACTOR_FILE).exists():
            raise ModelError(f"{directory}: not a model bundle ({EXTRACTOR_FILE} missing)")
        return cls(load_model(directory / MODEL_DIR),
                   FeatureExtractor.from_json((directory / EXTRACTOR_FILE).read_text()))


class EnsembleBundle:
    """The ensemble over member bundles (each scales the table its own way)."""

    kind = "ensemble"

    def __init__(self, members: dict[str, ModelBundle], settings: EnsembleSettings = EnsembleSettings(),
                 weights: dict[str, float] | None = None, threshold: float | None = None) -> None:
        self.ensemble = ModelEnsemble(members, settings, weights, threshold)

    @property
    def members(self) -> dict[str, ModelBundle]:
        return self.ensemble.members

    @property
    def weights(self) -> dict[str, float]:
        return self.ensemble.weights

    def score_samples(self, table: pl.DataFrame) -> np.ndarray:
        return self.ensemble.score(table).score

    def score_table(self, table: pl.DataFrame) -> pl.DataFrame:
        """Per account-day: the vote, each model's score, which models took part and the features that pushed
        the vote most (each member's contributions normalised per row, weighted as in the vote)."""
        result = self.ensemble.score(table)
        combined: dict[str, np.ndarray] = {}
        for name, weight in result.weights.items():
            bundle = self.members[name]
            part = _normalised(bundle.contributions(table)) * weight
            for index, feature in enumerate(bundle.feature_names):
                combined[feature] = combined.get(feature, 0.0) + part[:, index]
        names = list(combined)
        matrix = np.column_stack([combined[n] for n in names]) if names else np.zeros((table.height, 0))
        frame = _score_frame(table, result.score, result.per_model, result.models,
                             _top_features(matrix, names), self.ensemble.threshold)
        return frame.with_columns(pl.lit(json.dumps(result.failed, sort_keys=True) if result.failed else "")
                                  .alias("failed_models"))

    def save(self, directory: Path) -> None:
        self.ensemble.save(directory, lambda member, path: member.save(path))

    @classmethod
    def load(cls, directory: Path) -> EnsembleBundle:
        loaded = ModelEnsemble.load(directory, ModelBundle.load)
        return cls(loaded.members, loaded.settings, loaded.weights, loaded.threshold)


def _score_frame(table: pl.DataFrame, score: np.ndarray, per_model: dict[str, np.ndarray], models: list[str],
                 top_features: list[str], threshold: float) -> pl.DataFrame:
    return pl.DataFrame({
        ACCOUNT: table.get_column(ACCOUNT).cast(pl.String),
        DATE: table.get_column(DATE),
        "score": score,
        "anomalous": score >= threshold,
        "models": [MODELS_SEPARATOR.join(models)] * table.height,
        "top_features": top_features,
        **{f"score_{name}": values for name, values in sorted(per_model.items())},
    })


def load_bundle(directory: Path) -> ModelBundle | EnsembleBundle:
    directory = Path(directory)
    if (directory / STATE_FILE).exists() and json.loads((directory / STATE_FILE).read_text()).get("kind") == "ensemble":
        return EnsembleBundle.load(directory)
    return ModelBundle.load(directory)
