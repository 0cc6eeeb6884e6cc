"""ModelTrainer: account-day features + labels -> three models and their ensemble, judged on later days."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from surveillance_pipeline.config import FeatureSelectionSettings
from surveillance_pipeline.features.base import DATE
from surveillance_pipeline.features.extractor import FeatureExtractor
from surveillance_pipeline.log import get_logger
from surveillance_pipeline.ml.base import ModelError
from surveillance_pipeline.ml.bundle import EnsembleBundle, ModelBundle
from surveillance_pipeline.ml.dataset import (
    LABEL,
    PATTERNS,
    SPLIT,
    SPLITS,
    SplitDays,
    split_by_time,
)
from surveillance_pipeline.ml.ensemble import weighted_vote
from surveillance_pipeline.ml.metrics import classification_metrics, metric_value
from surveillance_pipeline.ml.settings import MLSettings

log = get_logger(__name__)
ENSEMBLE = "ensemble"


@dataclass
class PreparedData:
    """The split training set, the extractor fitted on the training days, and matrices per split."""

    table: pl.DataFrame
    days: SplitDays
    extractor: FeatureExtractor
    X: dict[str, np.ndarray]
    y: dict[str, np.ndarray | None]
    groups: np.ndarray  # day of each training row (folds of the tuning)

    @property
    def labelled(self) -> bool:
        return self.y["train"] is not None

    def frame(self, split: str) -> pl.DataFrame:
        return self.table.filter(pl.col(SPLIT) == split)


@dataclass
class TrainedModel:
    kind: str
    bundle: ModelBundle | EnsembleBundle
    metrics: dict[str, dict]                # split -> classification metrics (validation, test)
    scores: dict[str, np.ndarray]           # split -> scores (validation, test)
    details: dict = field(default_factory=dict)  # tuning, weights, epochs ...


@dataclass
class TrainingResult:
    prepared: PreparedData
    models: dict[str, TrainedModel]
    skipped: dict[str, str]
    selected: str
    metric: str

    def metric_rows(self) -> list[dict]:
        return [{"model": kind, "split": split, **trained.metrics[split]}
                for kind, trained in self.models.items() for split in ("validation", "test")]

    def pattern_recall(self, split: str = "test") -> list[dict]:
        """Per model and abuse pattern: abusive account-days of `split` and how many the model flagged."""
        frame = self.prepared.frame(split)
        if not self.prepared.labelled:
            return []
        patterns = frame.get_column(PATTERNS).to_list()
        rows = []
        for kind, trained in self.models.items():
            flagged = trained.scores[split] >= trained.metrics[split]["threshold"]
            counts: dict[str, list[int]] = {}
            for joined, hit in zip(patterns, flagged):
                for pattern in (joined.split(";") if joined else []):
                    entry = counts.setdefault(pattern, [0, 0])
                    entry[0] += 1
                    entry[1] += int(hit)
            rows += [{"model": kind, "pattern": p, "account_days": n, "found": k, "recall": k / n}
                     for p, (n, k) in sorted(counts.items())]
        return rows

    def test_curves(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        y = self.prepared.y["test"]
        return {} if y is None else {kind: (y, trained.scores["test"]) for kind, trained in self.models.items()}


def _model_class(kind: str):
    if kind == "isolation_forest":
        from surveillance_pipeline.ml.isolation_forest import IsolationForestModel
        return IsolationForestModel
    if kind == "random_forest":
        from surveillance_pipeline.ml.random_forest import RandomForestModel
        return RandomForestModel
    if kind == "autoencoder":
        from surveillance_pipeline.ml.autoencoder import AutoencoderModel
        return AutoencoderModel
    raise ModelError(f"unknown model kind {kind!r}")


class ModelTrainer:
    """Builds, trains and evaluates; registering in MLflow is `ml.registry`'s job."""

    def __init__(self, settings: MLSettings = MLSettings(),
                 selection: FeatureSelectionSettings = FeatureSelectionSettings()) -> None:
        self.settings = settings
        self.selection = selection

    def prepare(self, training_set: pl.DataFrame) -> PreparedData:
        """Split by time, fit the extractor on the training days only, and build the matrices."""
        table, days = split_by_time(training_set, self.settings.training.train_share,
                                    self.settings.training.validation_share)
        features = table.drop(LABEL, PATTERNS, SPLIT, strict=False)
        train = features.filter(table.get_column(SPLIT) == "train")
        extractor = FeatureExtractor.from_settings(self.selection).fit(train)
        if not extractor.features_:
            raise ModelError("no feature survived selection on the training days (all constant?)")
        labelled = LABEL in table.columns and table.get_column(LABEL).null_count() == 0
        X, y = {}, {}
        for split in SPLITS:
            part = features.filter(table.get_column(SPLIT) == split)
            X[split] = extractor.transform(part).select(extractor.output_names_).to_numpy().astype(np.float64)
            y[split] = (table.filter(pl.col(SPLIT) == split).get_column(LABEL).to_numpy().astype(np.int8)
                        if labelled else None)
        groups = table.filter(pl.col(SPLIT) == "train").get_column(DATE).to_numpy()
        log.info("training set split", **{f"{s}_rows": len(X[s]) for s in SPLITS},
                 labelled=labelled, features=len(extractor.output_names_))
        return PreparedData(table, days, extractor, X, y, groups)

    def evaluate(self, scores: dict[str, np.ndarray], data: PreparedData, threshold: float = 0.5) -> dict[str, dict]:
        """Metrics of validation and test scores (threshold-only figures when the training set has no labels)."""
        return {split: (classification_metrics(data.y[split], scores[split], threshold) if data.labelled else
                        {"precision": None, "recall": None, "f1": None, "auc_roc": None, "average_precision": None,
                         "threshold": threshold, "rows": len(scores[split]), "positives": None,
                         "flagged": int((scores[split] >= threshold).sum())})
                for split in ("validation", "test")}

    def train_model(self, kind: str, data: PreparedData) -> TrainedModel:
        """One model on the training days; validation days steer early stopping / the probability cut."""
        settings = getattr(self.settings, kind)
        model = _model_class(kind)(settings)
        details: dict = {}
        y_train, y_val = data.y["train"], data.y["validation"]
        if kind == "random_forest" and not data.labelled:
            raise ModelError("random_forest: supervised: the training set has no labels")
        if kind == "isolation_forest" and settings.tune and data.labelled:
            try:
                details["tuning"] = model.tune(data.X["train"], y_train, data.groups)
                details["tuned_params"] = model.tuned_params_
            except ModelError as error:
                details["tuning_skipped"] = str(error)
        model.fit(data.X["train"], y_train, X_val=data.X["validation"], y_val=y_val)
        bundle = ModelBundle(model, data.extractor)
        if kind == "random_forest":
            ranked = sorted(zip(data.extractor.output_names_, model.feature_importances_), key=lambda p: -p[1])
            details["feature_importances"] = {name: float(value) for name, value in ranked}
        if kind == "autoencoder":
            details["epochs_run"], details["best_epoch"] = model.epochs_run_, model.best_epoch_
        scores = {split: model.score_samples(data.X[split]) for split in ("validation", "test")}
        return TrainedModel(kind, bundle, self.evaluate(scores, data), scores, details)

    def grow_forest(self, previous: ModelBundle, data: PreparedData, version: int | None = None) -> TrainedModel:
        """Retraining by warm start: the champion forest plus `warm_start_trees` trees fitted on the new training
        days, scaled with the champion's own extractor. Refits instead when the forest would pass `max_trees`."""
        settings = self.settings.random_forest
        forest = previous.model
        if not data.labelled:
            raise ModelError("random_forest: supervised: the training set has no labels")
        if len(forest.estimator_.estimators_) + settings.warm_start_trees > settings.max_trees:
            trained = self.train_model("random_forest", data)
            trained.details["refitted"] = f"growing would pass max_trees={settings.max_trees}"
            return trained
        model = copy.deepcopy(forest)
        X = {split: previous.matrix(data.frame(split)) for split in SPLITS}
        before = len(model.estimator_.estimators_)
        model.grow(X["train"], data.y["train"], settings.warm_start_trees, X_val=X["validation"],
                   y_val=data.y["validation"])
        bundle = ModelBundle(model, previous.extractor)
        scores = {split: model.score_samples(X[split]) for split in ("validation", "test")}
        details = {"grown_from_version": version, "trees_before": before, "trees": len(model.estimator_.estimators_)}
        return TrainedModel("random_forest", bundle, self.evaluate(scores, data), scores,
                            details)

    def build_ensemble(self, trained: dict[str, TrainedModel], data: PreparedData) -> TrainedModel:
        """The weighted vote of the trained models; weights chosen on the validation days when labelled."""
        if not trained:
            raise ModelError("ensemble: no trained model to combine")
        settings = self.settings.ensemble
        weights = {kind: settings.weights.get(kind, 0.0) for kind in trained}
        if not any(weights.values()):
            weights = {kind: 1.0 for kind in trained}
        bundle = EnsembleBundle({kind: t.bundle for kind, t in trained.items()}, settings, weights)
        details: dict = {}
        if settings.tune_weights and data.labelled and 0 < data.y["validation"].sum() < len(data.y["validation"]):
            candidates = bundle.ensemble.tune_weights({k: t.scores["validation"] for k, t in trained.items()},
                                                      data.y["validation"], self.settings.training.selection_metric)
            details["weight_candidates"] = len(candidates)
        details["weights"] = dict(bundle.weights)
        details["threshold"] = bundle.ensemble.threshold
        # The vote of the members' known scores on each split (what bundle.score_table computes from a table).
        scores = {split: weighted_vote({k: t.scores[split] for k, t in trained.items()}, bundle.weights)[0]
                  for split in ("validation", "test")}
        metrics = self.evaluate(scores, data, bundle.ensemble.threshold)
        return TrainedModel(ENSEMBLE, bundle, metrics, scores, details)

    def train(self, training_set: pl.DataFrame) -> TrainingResult:
        data = self.prepare(training_set)
        trained, skipped = {}, {}
        for kind in self.settings.training.models:
            try:
                trained[kind] = self.train_model(kind, data)
                log.info("model trained", model=kind, **_short(trained[kind].metrics["validation"]))
            except ModelError as error:
                skipped[kind] = str(error)
                log.warning("model not trained", model=kind, reason=str(error))
        ensemble = self.build_ensemble(trained, data)
        models = {**trained, ENSEMBLE: ensemble}
        metric = self.settings.training.selection_metric
        selected = max(models, key=lambda k: (metric_value(models[k].metrics["validation"], metric), k == ENSEMBLE))
        return TrainingResult(data, models, skipped, selected, metric)


def _short(metrics: dict) -> dict:
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in metrics.items()
            if k in ("precision", "recall", "f1", "auc_roc", "average_precision")}
