"""Models: the training set from stored features and labels, one asset per model (trained, logged to MLflow,
registered through the promotion gate), the ensemble over the versions just registered, and the daily
scores of every account-day by the champion ensemble."""
import json

import polars as pl
from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetIn,
    BackfillPolicy,
    MetadataValue,
    Output,
    asset,
)

from assets.partitions import daily_partitions
from resources.io_managers import PARTITION_COLUMN
from resources.mlflow import MLflowResource
from resources.settings import SettingsResource
from surveillance_pipeline.features.base import DATE
from surveillance_pipeline.ml.base import ModelError
from surveillance_pipeline.ml.dataset import LABEL, PATTERNS
from surveillance_pipeline.ml.registry import Registration
from surveillance_pipeline.ml.scoring import TooFewAccountDays, score_account_days
from surveillance_pipeline.ml.service import evaluate_bundle, register_model, stored_training_set, trainer_for
from surveillance_pipeline.ml.trainer import ENSEMBLE

MEMBERS = ("isolation_forest", "autoencoder", "random_forest")
TRAINED, NOT_TRAINED = "trained", "not trained"


@asset(group_name="models", kinds={"polars"},
       deps=[AssetDep("account_features", partition_mapping=AllPartitionMapping())])
def training_set(context: AssetExecutionContext, settings: SettingsResource) -> Output[pl.DataFrame]:
    """The newest `models.training.window_days` days of account features, each account-day labelled from
    the episode labels in `paths.labels_dir` (1 when an episode names the account on that day)."""
    cfg = settings.get()
    table = stored_training_set(cfg)
    labelled = table.get_column(LABEL).null_count() == 0
    patterns = (table.filter(pl.col(LABEL) == 1).group_by(PATTERNS).len().sort(PATTERNS).iter_rows()
                if labelled else [])
    return Output(table, metadata={
        "account_days": table.height, "days": table.get_column(DATE).n_unique(),
        "first_day": str(table.get_column(DATE).min()), "last_day": str(table.get_column(DATE).max()),
        "labelled": labelled, "abusive_account_days": int(table.get_column(LABEL).sum() or 0),
        "by_patterns": MetadataValue.json(dict(patterns))})


def _record(kind: str, status: str, reason: str, registration: Registration | None, metrics: dict) -> pl.DataFrame:
    row = {"model": kind, "status": status, "reason": reason, "name": None, "version": None, "run_id": None,
           "champion": None, "gate": None, "metrics": json.dumps(metrics, default=str)}
    if registration is not None:
        row.update(name=registration.name, version=registration.version, run_id=registration.run_id,
                   champion=registration.promoted, gate=registration.reason)
    return pl.DataFrame([row], schema={"model": pl.String, "status": pl.String, "reason": pl.String,
                                       "name": pl.String, "version": pl.Int64, "run_id": pl.String,
                                       "champion": pl.Boolean, "gate": pl.String, "metrics": pl.String})


def _metadata(registration: Registration, metrics: dict, tracking_uri: str) -> dict:
    flat = {f"{split}_{name}": value for split, values in metrics.items() for name, value in values.items()
            if name in ("precision", "recall", "f1", "auc_roc", "average_precision") and value is not None}
    return {"mlflow_run_id": registration.run_id, "registered_model": registration.name,
            "version": registration.version, "champion": registration.promoted, "gate": registration.reason,
            "tracking_uri": tracking_uri, **flat}


def _train_member(kind: str, context: AssetExecutionContext, table: pl.DataFrame, settings: SettingsResource,
                  mlflow: MLflowResource) -> Output[pl.DataFrame]:
    cfg = settings.get()
    trainer = trainer_for(cfg)
    data = trainer.prepare(table)
    if kind == "random_forest" and not data.labelled:
        reason = "supervised: the training set has no labels (put episode labels in paths.labels_dir)"
        context.log.warning(f"{kind} not trained: {reason}")
        return Output(_record(kind, NOT_TRAINED, reason, None, {}), metadata={"status": NOT_TRAINED, "reason": reason})
    registry = mlflow.registry(cfg)
    champion = registry.champion_version(kind) if kind == "random_forest" else None
    if champion is not None and cfg.models.random_forest.retrain == "grow":
        trained = trainer.grow_forest(registry.load(kind), data, champion)
        context.log.info(f"random_forest grown from v{champion}: {trained.details}")
    else:
        try:
            trained = trainer.train_model(kind, data)
        except ModelError as reason:  # e.g. no abusive account-day in the training days: said, not hidden
            context.log.warning(f"{kind} not trained: {reason}")
            return Output(_record(kind, NOT_TRAINED, str(reason), None, {}),
                          metadata={"status": NOT_TRAINED, "reason": str(reason)})
    registration = register_model(registry, trained, data, cfg, tags={"trigger": "dagster", "run_id": context.run.run_id})
    context.log.info(f"{registration.name} v{registration.version}: {registration.reason}")
    return Output(_record(kind, TRAINED, "", registration, trained.metrics),
                  metadata=_metadata(registration, trained.metrics, registry.tracking_uri))


@asset(group_name="models", kinds={"sklearn", "mlflow"})
def isolation_forest_model(context: AssetExecutionContext, training_set: pl.DataFrame, settings: SettingsResource,
                           mlflow: MLflowResource) -> Output[pl.DataFrame]:
    """IsolationForest (tuned by cross-validation over days when labelled), registered as
    surveillance-isolation-forest."""
    return _train_member("isolation_forest", context, training_set, settings, mlflow)


@asset(group_name="models", kinds={"keras", "mlflow"})
def autoencoder_model(context: AssetExecutionContext, training_set: pl.DataFrame, settings: SettingsResource,
                      mlflow: MLflowResource) -> Output[pl.DataFrame]:
    """Keras autoencoder of ordinary account-days, registered as surveillance-autoencoder."""
    return _train_member("autoencoder", context, training_set, settings, mlflow)


@asset(group_name="models", kinds={"sklearn", "mlflow"})
def random_forest_model(context: AssetExecutionContext, training_set: pl.DataFrame, settings: SettingsResource,
                        mlflow: MLflowResource) -> Output[pl.DataFrame]:
    """RandomForest classifier of labelled abusive account-days, registered as surveillance-random-forest."""
    return _train_member("random_forest", context, training_set, settings, mlflow)


@asset(group_name="models", kinds={"mlflow"})
def model_ensemble(context: AssetExecutionContext, training_set: pl.DataFrame,
                   isolation_forest_model: pl.DataFrame, autoencoder_model: pl.DataFrame,
                   random_forest_model: pl.DataFrame, settings: SettingsResource,
                   mlflow: MLflowResource) -> Output[pl.DataFrame]:
    """The weighted vote of the versions the model assets just registered, weights chosen on the validation
    days; registered as surveillance-ensemble."""
    cfg = settings.get()
    trainer = trainer_for(cfg)
    data = trainer.prepare(training_set)
    registry = mlflow.registry(cfg)
    members = {}
    for record in (isolation_forest_model, autoencoder_model, random_forest_model):
        row = record.row(0, named=True)
        if row["status"] != TRAINED:
            context.log.warning(f"ensemble without {row['model']}: {row['reason']}")
            continue
        bundle = registry.load(row["model"], row["version"])
        members[row["model"]] = evaluate_bundle(trainer, row["model"], bundle, data)
    if not members:
        raise ModelError("model_ensemble: none of the three models was trained (see their assets' reasons)")
    trained = trainer.build_ensemble(members, data)
    registration = register_model(registry, trained, data, cfg, tags={"trigger": "dagster", "run_id": context.run.run_id,
                                  "members": json.dumps({k: int(r.row(0, named=True)["version"] or 0) for k, r in
                                                         zip(MEMBERS, (isolation_forest_model, autoencoder_model,
                                                                       random_forest_model))})})
    context.log.info(f"{registration.name} v{registration.version}: {registration.reason}")
    return Output(_record(ENSEMBLE, TRAINED, "", registration, trained.metrics), metadata={
        **_metadata(registration, trained.metrics, registry.tracking_uri),
        "weights": MetadataValue.json(trained.details.get("weights", {}))})


@asset(partitions_def=daily_partitions, group_name="scoring", kinds={"polars", "mlflow"},
       backfill_policy=BackfillPolicy.single_run(), metadata={PARTITION_COLUMN: DATE}, ins={"account_features": AssetIn()},
       deps=[AssetDep("model_ensemble")])
def model_scores(context: AssetExecutionContext, account_features: pl.DataFrame, settings: SettingsResource,
                 mlflow: MLflowResource) -> Output[pl.DataFrame]:
    """Every account-day of the partition scored by the champion ensemble (each model's score, the vote, the
    models that took part, the features that pushed it); with no champion registered, by unsupervised models
    fitted on the day itself, and the rows say so."""
    cfg = settings.get()
    registry = mlflow.registry(cfg)
    frames, sources = [], {}
    for key in context.partition_keys:
        day_table = account_features.filter(pl.col(DATE).cast(pl.String) == key)
        if day_table.is_empty():
            context.log.info(f"{key}: no account-days (anonymous tape or no trades): nothing to score")
            continue
        try:
            scores, scorer = score_account_days(day_table, cfg.models, registry, cfg.features.selection)
        except TooFewAccountDays as reason:
            sources[key] = f"not scored: {reason}"
            context.log.warning(f"{key}: {sources[key]}")
            continue
        sources[key] = f"{scorer.source}: {scorer.note or json.dumps(scorer.versions)}"
        context.log.info(f"{key}: {scores.height} account-days scored ({sources[key]})")
        frames.append(scores)
    table = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame(
        schema={"account_id": pl.String, DATE: pl.Date, "score": pl.Float64})
    anomalous = int(table.get_column("anomalous").sum()) if "anomalous" in table.columns else 0
    return Output(table, metadata={"account_days": table.height, "anomalous": anomalous,
                                   "model_source": MetadataValue.json(sources),
                                   "top": MetadataValue.md(_top_markdown(table))})


def _top_markdown(table: pl.DataFrame, n: int = 10) -> str:
    if table.is_empty():
        return "no account-days"
    lines = ["| account | day | score | models | top features |", "|---|---|---|---|---|"]
    for row in table.sort("score", descending=True).head(n).iter_rows(named=True):
        lines.append(f"| {row['account_id']} | {row[DATE]} | {row['score']:.3f} | {row.get('models', '')} | "
                     f"{row.get('top_features', '')} |")
    return "\n".join(lines)
