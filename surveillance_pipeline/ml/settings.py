"""Settings of the models, the trainer and the MLflow registry (`models:` in config/surveillance.yaml)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MODEL_KINDS = ("isolation_forest", "autoencoder", "random_forest")
ModelKind = Literal["isolation_forest", "autoencoder", "random_forest"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IsolationForestSettings(_Section):
    n_estimators: int = Field(200, ge=10, description="trees")
    max_samples: int | Literal["auto"] = Field("auto", description="account-days drawn per tree ('auto': 256)")
    contamination: float = Field(0.05, gt=0.0, le=0.5, description="expected share of anomalous account-days: "
                                 "sets the score at which an account-day counts as anomalous")
    random_state: int = 0
    # Tuning on labelled validation data: every combination is scored by cross-validation over days.
    tune: bool = Field(True, description="tune the three below when the training set has labels")
    tune_n_estimators: list[int] = Field(default_factory=lambda: [100, 200])
    tune_max_samples: list[int | Literal["auto"]] = Field(default_factory=lambda: ["auto", 512])
    tune_contamination: list[float] = Field(default_factory=lambda: [0.02, 0.05, 0.1])
    tune_folds: int = Field(3, ge=2, le=10, description="folds (contiguous blocks of days) of the tuning")


class AutoencoderSettings(_Section):
    hidden_layers: list[int] = Field(default_factory=lambda: [32, 16],
                                     description="encoder widths; the decoder mirrors them")
    bottleneck: int = Field(8, ge=1, description="width of the code layer")
    activation: str = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    learning_rate: float = Field(1e-3, gt=0.0)
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(256, ge=1)
    validation_split: float = Field(0.2, gt=0.0, lt=0.5, description="share of the training rows held out "
                                    "for early stopping when no validation set is given")
    patience: int = Field(8, ge=1, description="epochs without a better validation loss before stopping")
    threshold_quantile: float = Field(0.99, gt=0.5, lt=1.0, description="anomalous above this quantile of the "
                                      "validation reconstruction error of ordinary account-days")
    random_state: int = 0


class RandomForestSettings(_Section):
    n_estimators: int = Field(300, ge=10)
    max_depth: int | None = Field(None, ge=1)
    min_samples_leaf: int = Field(2, ge=1)
    max_features: float | Literal["sqrt", "log2"] = "sqrt"
    class_weight: Literal["balanced", "balanced_subsample"] | None = "balanced_subsample"
    oversample_ratio: float = Field(0.0, ge=0.0, le=1.0, description="resample abusive account-days (with "
                                    "replacement) up to this share of the ordinary ones; 0: class weights only")
    warm_start_trees: int = Field(100, ge=1, description="trees added per retraining when growing a forest")
    retrain: Literal["refit", "grow"] = Field("refit", description="scheduled retraining: fit a new forest, or grow "
                                              "the champion with warm_start_trees trees fitted on the new data "
                                              "(scaled as the champion was)")
    max_trees: int = Field(1000, ge=10, description="a forest that would grow past this is refitted instead")
    random_state: int = 0


class EnsembleSettings(_Section):
    weights: dict[ModelKind, float] = Field(
        default_factory=lambda: {"isolation_forest": 1.0, "autoencoder": 1.0, "random_forest": 2.0},
        description="vote weights; re-chosen on validation data by the trainer when it has labels")
    tune_weights: bool = True
    min_weight: float = Field(0.1, ge=0.0, lt=0.34, description="every trained model keeps at least this weight "
                              "when weights are tuned: the unsupervised models are there for abuse the labels do "
                              "not show, which validation data cannot reward")
    weight_grid_step: float = Field(0.1, gt=0.0, le=0.5)
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="ensemble score from which an account-day is "
                             "anomalous (each model maps its own decision boundary to 0.5)")
    tune_threshold: bool = Field(True, description="re-choose the threshold with the weights: best F1 on validation")
    threshold_range: tuple[float, float] = Field((0.3, 0.7), description="a tuned threshold stays in this band")

    @field_validator("weights")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in value.values()) or not any(w > 0 for w in value.values()):
            raise ValueError("weights must be >= 0 and at least one > 0")
        return value


class TrainingSettings(_Section):
    train_share: float = Field(0.70, gt=0.0, lt=1.0)
    validation_share: float = Field(0.15, gt=0.0, lt=1.0)
    models: list[ModelKind] = Field(default_factory=lambda: list(MODEL_KINDS))
    selection_metric: Literal["average_precision", "f1", "auc_roc"] = Field(
        "average_precision", description="compares models, ensemble weights and champion vs challenger")
    window_days: int = Field(90, ge=3, description="retraining reads the newest this many days of account features")
    scenario_days: int = Field(10, ge=3, description="days of generated scenarios for `surveillance train`")
    scenario_accounts: int = Field(2_000, ge=20, description="a realistic crowd: most accounts trade a few times a day")
    scenario_trades_per_day: int = Field(20_000, ge=1_000)


class RegistrySettings(_Section):
    experiment: str = "surveillance-models"
    model_prefix: str = "surveillance-"
    champion_alias: str = "champion"


class MLSettings(_Section):
    isolation_forest: IsolationForestSettings = IsolationForestSettings()
    autoencoder: AutoencoderSettings = AutoencoderSettings()
    random_forest: RandomForestSettings = RandomForestSettings()
    ensemble: EnsembleSettings = EnsembleSettings()
    training: TrainingSettings = TrainingSettings()
    registry: RegistrySettings = RegistrySettings()
    fallback_models: list[Literal["isolation_forest", "autoencoder"]] = Field(
        default_factory=lambda: ["isolation_forest", "autoencoder"],
        description="with no champion registered, scoring fits these unsupervised models on the day itself")
