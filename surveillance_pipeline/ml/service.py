"""Training end to end, shared by `surveillance train`, the Dagster model assets and the retraining schedule:
the training set from stored features and labels, the models, MLflow registration and the report."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl

from surveillance_pipeline.config import Settings
from surveillance_pipeline.contract import LABEL_SCHEMA, Label
from surveillance_pipeline.log import get_logger
from surveillance_pipeline.ml.dataset import (
    TrainingDataError,
    build_training_set,
)
from surveillance_pipeline.ml.registry import (
    ModelRegistry,
    Registration,
    resolve_tracking_uri,
)
from surveillance_pipeline.ml.trainer import (
    ENSEMBLE,
    ModelTrainer,
    PreparedData,
    TrainedModel,
    TrainingResult,
)

log = get_logger(__name__)
LABEL_SUFFIXES = (".csv", ".parquet")


def registry_for(settings: Settings, tracking_uri: str | None = None) -> ModelRegistry:
    """The configured MLflow store (`services.mlflow_tracking_uri`, MLFLOW_TRACKING_URI), or the one given."""
    uri = resolve_tracking_uri(tracking_uri or settings.services.mlflow_tracking_uri, settings.root)
    return ModelRegistry(uri, settings.models.registry)


def trainer_for(settings: Settings) -> ModelTrainer:
    return ModelTrainer(settings.models, settings.features.selection)


def read_labels(folder: Path) -> pl.DataFrame | None:
    """Every label file in `folder` (CSV or Parquet, the labels contract), exact duplicate rows dropped;
    None when there is none. A file without the contract's columns is an error naming it."""
    files = sorted(p for p in Path(folder).glob("*") if p.suffix in LABEL_SUFFIXES) if Path(folder).exists() else []
    if not files:
        return None
    frames = []
    for path in files:
        frame = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path, infer_schema_length=0)
        missing = [c for c in LABEL_SCHEMA if c not in frame.columns]
        if missing:
            raise TrainingDataError(f"{path}: labels lack columns {missing}")
        frames.append(frame.select(
            *[pl.col(c).cast(pl.String) for c in (Label.EPISODE_ID, Label.PATTERN, Label.SYMBOL, Label.USER_IDS)],
            *[(pl.col(c) if frame.schema[c] != pl.String else
               pl.col(c).str.to_datetime(time_zone="UTC", time_unit="us")).cast(pl.Datetime("us", "UTC"))
              for c in (Label.START, Label.END)]))
    # generated files number their episodes from ep-0001 each: only rows identical in every column are one
    return pl.concat(frames).unique(maintain_order=True)


def read_feature_history(warehouse: Path, window_days: int, asset: str = "account_features") -> pl.DataFrame:
    """The newest `window_days` stored partitions of the account features."""
    folder = Path(warehouse) / asset
    days = sorted(p for p in folder.glob("*.parquet") if _is_day(p.stem)) if folder.exists() else []
    if not days:
        raise TrainingDataError(f"no {asset} partitions in {folder}: materialise account_features first")
    return pl.concat([pl.read_parquet(p) for p in days[-window_days:]], how="diagonal_relaxed")


def _is_day(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def stored_training_set(settings: Settings) -> pl.DataFrame:
    features = read_feature_history(settings.resolve(settings.paths.warehouse_dir),
                                    settings.models.training.window_days)
    return build_training_set(features, read_labels(settings.resolve(settings.paths.labels_dir)))


def evaluate_bundle(trainer: ModelTrainer, kind: str, bundle, data: PreparedData) -> TrainedModel:
    """A registered model's scores and metrics on this training set's validation and test days."""
    scores = {split: bundle.score_samples(data.frame(split)) for split in ("validation", "test")}
    return TrainedModel(kind, bundle, trainer.evaluate(scores, data), scores)


def register_model(registry: ModelRegistry, trained: TrainedModel, data: PreparedData, settings: Settings,
                   tags: dict | None = None, artifacts: dict[str, Path] | None = None) -> Registration:
    params = {"model": trained.kind, "training_days": len(data.days.train),
              "validation_days": len(data.days.validation), "test_days": len(data.days.test),
              "features": len(data.extractor.output_names_), "labelled": data.labelled,
              "settings": (settings.models.ensemble.model_dump() if trained.kind == ENSEMBLE
                           else getattr(settings.models, trained.kind).model_dump()),
              "selection": settings.features.selection.model_dump(), **trained.details.get("tuned_params", {})}
    if trained.kind == ENSEMBLE:
        params["weights"] = trained.details.get("weights")
    # the gate compares the new version with the champion on the test days (held out from all tuning)
    return registry.register(trained, data.frame("test"), data.y["test"],
                             settings.models.training.selection_metric, params,
                             {"split_days": str(data.days.as_dict()), **(tags or {})}, artifacts)


@dataclass
class TrainingOutcome:
    result: TrainingResult
    registrations: dict[str, Registration]
    report: dict[str, Path] = field(default_factory=dict)


def train_and_register(settings: Settings, training_set: pl.DataFrame, registry: ModelRegistry,
                       report_dir: Path | None = None, meta: dict | None = None,
                       tags: dict | None = None) -> TrainingOutcome:
    """Train every configured model and the ensemble, register all in MLflow through the promotion gate,
    and write the performance report (attached to the ensemble's run)."""
    result = trainer_for(settings).train(training_set)
    registrations = {kind: register_model(registry, trained, result.prepared, settings, tags)
                     for kind, trained in result.models.items()}  # the ensemble last: dicts keep order
    report = {}
    if report_dir is not None:
        from surveillance_pipeline.reporting.training import write_training_report

        report = write_training_report(Path(report_dir), result.metric_rows(), result.test_curves(),
                                       _report_meta(result, registrations, meta))
        for path in report.values():
            registry.client.log_artifact(registrations[ENSEMBLE].run_id, str(path), artifact_path="report")
    return TrainingOutcome(result, registrations, report)


def _report_meta(result: TrainingResult, registrations: dict[str, Registration], meta: dict | None) -> dict:
    days = result.prepared.days
    first, last = (days.train + days.validation + days.test)[0], days.test[-1]
    return {
        "title": "Model training report",
        "period": f"{first} – {last} (train {len(days.train)} d, validation {len(days.validation)} d, "
                  f"test {len(days.test)} d)",
        "selected_model": result.selected,
        "selection_metric": result.metric,
        "ensemble_weights": result.models[ENSEMBLE].details.get("weights"),
        "skipped_models": "; ".join(f"{k}: {v}" for k, v in result.skipped.items()) or "none",
        "registered": {r.name: {"version": r.version, "champion": r.promoted, "reason": r.reason}
                       for r in registrations.values()},
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(meta or {}),
    }


def train_on_scenarios(settings: Settings, registry: ModelRegistry, days: int | None = None, seed: int = 7,
                       report_dir: Path | None = None) -> TrainingOutcome:
    """`surveillance train`: generate labelled scenario days, compute their account features, train,
    register and report. The seed and the scenario size are recorded in the runs and the report."""
    from surveillance_pipeline.ml.scenarios import scenario_training_data

    training = settings.models.training
    days = days or training.scenario_days
    features, labels = scenario_training_data(days, seed, training.scenario_accounts,
                                              training.scenario_trades_per_day, settings.features)
    table = build_training_set(features, labels)
    meta = {"seed": seed, "scenario_days": days, "scenario_accounts": training.scenario_accounts,
            "scenario_trades_per_day": training.scenario_trades_per_day, "source": "generated scenarios"}
    return train_and_register(settings, table, registry, report_dir, meta,
                              tags={"seed": str(seed), "source": "generated scenarios", "scenario_days": str(days)})
