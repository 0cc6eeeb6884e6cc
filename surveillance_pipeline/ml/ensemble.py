"""ModelEnsemble: a weighted vote of the models' 0..1 scores, renormalised over the models that answered."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from surveillance_pipeline.ml.base import (
    ModelError,
    read_state,
    save_atomically,
    write_state,
)
from surveillance_pipeline.ml.metrics import best_f1_threshold, classification_metrics, metric_value
from surveillance_pipeline.ml.settings import EnsembleSettings

KIND = "ensemble"
MODELS_SEPARATOR = ";"


@dataclass
class EnsembleScores:
    """Scores of one batch of rows: per model that answered, the vote, and who took part."""

    per_model: dict[str, np.ndarray]
    score: np.ndarray
    weights: dict[str, float]               # renormalised weights of the models that took part
    failed: dict[str, str] = field(default_factory=dict)  # model -> error message

    @property
    def models(self) -> list[str]:
        return sorted(self.per_model)


def weighted_vote(per_model: dict[str, np.ndarray], weights: dict[str, float]) -> tuple[np.ndarray, dict]:
    """Weighted mean of the scores of the models present, weights renormalised over them."""
    used = {name: weights.get(name, 0.0) for name in per_model if weights.get(name, 0.0) > 0}
    total = sum(used.values())
    if not used or total <= 0:
        raise ModelError(f"ensemble: none of the weighted models {sorted(w for w, v in weights.items() if v > 0)} "
                         f"produced scores (available: {sorted(per_model)})")
    normalised = {name: weight / total for name, weight in used.items()}
    score = sum(per_model[name] * weight for name, weight in normalised.items())
    return np.clip(score, 0.0, 1.0), normalised


class ModelEnsemble:
    """Combines member models that each map their own decision boundary to 0.5 (see ml.base).

    `score` asks every member; a member that is missing or raises is left out, the remaining weights are
    renormalised, and the result records which models took part and why the others did not.
    """

    kind = KIND

    def __init__(self, members: dict[str, object], settings: EnsembleSettings = EnsembleSettings(),
                 weights: dict[str, float] | None = None, threshold: float | None = None) -> None:
        self.members = dict(members)
        self.settings = settings
        self.weights = dict(weights if weights is not None else settings.weights)
        self.threshold = float(threshold if threshold is not None else settings.threshold)

    def score(self, matrices: dict[str, np.ndarray] | np.ndarray) -> EnsembleScores:
        """`matrices`: one feature matrix for all members, or one per member (members with their own scaling)."""
        per_model, failed = {}, {}
        for name, model in self.members.items():
            if self.weights.get(name, 0.0) <= 0:
                continue
            X = matrices.get(name) if isinstance(matrices, dict) else matrices
            if X is None:
                failed[name] = "no features for this model"
                continue
            try:
                per_model[name] = np.asarray(model.score_samples(X), dtype=np.float64)
            except Exception as error:  # recorded, not swallowed: EnsembleScores.failed names it
                failed[name] = f"{type(error).__name__}: {error}"
        for name in self.weights:
            if name not in self.members and self.weights[name] > 0:
                failed.setdefault(name, "model not available")
        if not per_model:
            raise ModelError("ensemble: no member model could score: " +
                             "; ".join(f"{k}: {v}" for k, v in sorted(failed.items())))
        score, used = weighted_vote(per_model, self.weights)
        return EnsembleScores(per_model=per_model, score=score, weights=used, failed=failed)

    def tune_weights(self, per_model: dict[str, np.ndarray], y: np.ndarray, metric: str) -> list[dict]:
        """Pick the weights on validation scores: a grid over the simplex (step from settings, every weight at
        least `min_weight`), best `metric`; ties go to the weights closest to equal. Returns every candidate."""
        names = sorted(per_model)
        steps = int(round(1.0 / self.settings.weight_grid_step))
        candidates = []
        for combo in itertools.product(range(steps + 1), repeat=len(names)):
            if sum(combo) != steps:
                continue
            weights = {name: c / steps for name, c in zip(names, combo)}
            if min(weights.values()) < self.settings.min_weight - 1e-9:
                continue
            score, _ = weighted_vote(per_model, weights)
            metrics = classification_metrics(y, score, self.threshold)
            spread = float(np.std(list(weights.values())))
            candidates.append({"weights": weights, "value": metric_value(metrics, metric), "spread": spread})
        if not candidates:
            raise ModelError("ensemble: no weights to choose from")
        best = max(candidates, key=lambda c: (c["value"], -c["spread"]))
        self.weights = dict(best["weights"])
        if self.settings.tune_threshold:
            # The vote's cut with the best F1 on the same validation days, kept within the configured band.
            cut = best_f1_threshold(y, weighted_vote(per_model, self.weights)[0])
            if cut is not None:
                low, high = self.settings.threshold_range
                self.threshold = float(min(max(cut, low), high))
        return candidates

    def predict(self, matrices) -> np.ndarray:
        return (self.score(matrices).score >= self.threshold).astype(np.int8)

    def save(self, directory: Path, save_member) -> None:
        """Weights and settings in state.json, each member in its own sub-directory via `save_member`."""
        def write(tmp: Path) -> None:
            for name, member in self.members.items():
                save_member(member, tmp / name)
            write_state(tmp, {"kind": KIND, "settings": self.settings.model_dump(), "weights": self.weights,
                              "threshold": self.threshold, "members": sorted(self.members)})
        save_atomically(write, directory)

    @classmethod
    def load(cls, directory: Path, load_member) -> ModelEnsemble:
        state = read_state(directory, KIND)
        members = {}
        for name in state["members"]:
            if (Path(directory) / name).exists():
                members[name] = load_member(Path(directory) / name)
        return cls(members, EnsembleSettings(**state["settings"]), weights=state["weights"],
                   threshold=state.get("threshold"))
