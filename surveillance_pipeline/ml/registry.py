"""MLflow: a run per trained model (params, metrics, the scaler and feature list, the model), the registered
models `surveillance-isolation-forest | -autoencoder | -random-forest | -ensemble`, the `champion` alias with
its promotion gate, rollback, and loading champions back. MLflow is imported here, lazily, and nowhere else
(but ml.pyfunc)."""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from surveillance_pipeline.log import get_logger
from surveillance_pipeline.ml.base import ModelError
from surveillance_pipeline.ml.metrics import classification_metrics, metric_value
from surveillance_pipeline.ml.settings import RegistrySettings

log = get_logger(__name__)
KINDS = ("isolation_forest", "autoencoder", "random_forest", "ensemble")
HISTORY_TAG = "champion_history"
MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")  # logged as a model from code
PIP_REQUIREMENTS = ["scikit-learn==1.9.1", "polars==2.1.0", "numpy==2.4.6", "pyarrow==25.0.1",
                    "keras==3.15.1", "tensorflow-cpu==2.21.0", "mlflow==3.17.2"]


def resolve_tracking_uri(value: str, root: Path) -> str:
    """A URI with a scheme (http, sqlite, postgresql, file ...) is used as is; a plain path names a local
    store folder, kept as SQLite (`<folder>/mlflow.db`) with artifacts in `<folder>/artifacts`."""
    if urlparse(value).scheme and not Path(value).is_absolute():
        return value
    folder = Path(value) if Path(value).is_absolute() else root / value
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def local_artifact_root(tracking_uri: str) -> str | None:
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    return None


@dataclass
class Registration:
    """What happened to one newly trained model in the registry."""

    name: str
    version: int
    run_id: str
    promoted: bool
    reason: str
    champion_version: int | None       # the champion after the gate
    metric: str
    candidate_value: float | None
    previous_value: float | None

    def as_dict(self) -> dict:
        return asdict(self)


class ModelRegistry:
    def __init__(self, tracking_uri: str, settings: RegistrySettings = RegistrySettings()) -> None:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        import mlflow
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.settings = settings
        self._mlflow = mlflow
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    # -- names ------------------------------------------------------------------------------------------
    def model_name(self, kind: str) -> str:
        """`isolation_forest` -> `surveillance-isolation-forest`; full names pass through."""
        if kind.startswith(self.settings.model_prefix):
            return kind
        short = kind.replace("_", "-")
        if short.replace("-", "_") not in KINDS:
            raise ModelError(f"unknown model {kind!r}; expected one of {[k.replace('_', '-') for k in KINDS]}")
        return f"{self.settings.model_prefix}{short}"

    def _experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(self.settings.experiment)
        if experiment is not None:
            return experiment.experiment_id
        return self.client.create_experiment(self.settings.experiment,
                                             artifact_location=local_artifact_root(self.tracking_uri))

    # -- champions --------------------------------------------------------------------------------------
    def champion_version(self, kind: str) -> int | None:
        from mlflow.exceptions import MlflowException

        try:
            return int(self.client.get_model_version_by_alias(self.model_name(kind),
                                                              self.settings.champion_alias).version)
        except MlflowException as error:
            # no such model or alias: no champion. Anything else (the store unreachable...) is an error: treating
            # an outage as "no champion" would promote an untested model or score with self-fitted ones.
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                return None
            raise

    def load(self, kind: str, version: int | None = None):
        """The bundle of `kind` at `version`, or the champion; ModelError when there is none."""
        import mlflow.pyfunc

        name = self.model_name(kind)
        if version is None and self.champion_version(kind) is None:
            raise ModelError(f"no {self.settings.champion_alias} version of {name} in {self.tracking_uri}: "
                             "train first (`surveillance train`)")
        uri = f"models:/{name}/{version}" if version is not None else f"models:/{name}@{self.settings.champion_alias}"
        return mlflow.pyfunc.load_model(uri).unwrap_python_model().bundle

    # -- logging and the gate ---------------------------------------------------------------------------
    def register(self, trained, validation_table, y_validation: np.ndarray | None, metric: str,
                 params: dict, tags: dict | None = None, artifacts: dict[str, Path] | None = None,
                 gate_split: str = "test") -> Registration:
        """Log `trained` (a TrainedModel) as a run, register a new version and apply the promotion gate: the
        version becomes champion only if it beats the current champion on the same held-out days
        (`validation_table` / `y_validation` are those of `gate_split`, by default the test days: the validation
        days tuned the new version's cuts and weights, so comparing there would favour it)."""
        import mlflow.pyfunc

        from surveillance_pipeline.ml.pyfunc import BUNDLE_ARTIFACT

        name = self.model_name(trained.kind)
        mlflow = self._mlflow
        with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp, mlflow.start_run(
                experiment_id=self._experiment_id(), run_name=f"train-{trained.kind}") as run:
            warnings.filterwarnings("ignore", message=".*input example was not provided.*")
            mlflow.set_tags({"model": trained.kind, "registered_model": name, **(tags or {})})
            mlflow.log_params(_flat(params))
            for split, values in trained.metrics.items():
                mlflow.log_metrics({f"{split}_{k}": float(v) for k, v in values.items()
                                    if isinstance(v, int | float) and v is not None})
            bundle_dir = Path(tmp) / BUNDLE_ARTIFACT
            trained.bundle.save(bundle_dir)
            extractor = _extractor_of(trained.bundle)
            mlflow.log_text(extractor.to_json(), "scaler_and_features.json")
            mlflow.log_dict({"features": extractor.output_names_, "dropped": extractor.dropped_}, "features.json")
            if trained.details:
                mlflow.log_dict(_jsonable(trained.details), "details.json")
            for label, path in (artifacts or {}).items():
                mlflow.log_artifact(str(path), artifact_path=label)
            # Output schema only: feature tables carry integer and float columns that may be missing on a
            # given day, and MLflow's input enforcement would refuse an int column declared double.
            example = validation_table.head(5).drop("label", "patterns", "split", strict=False)
            outputs = mlflow.models.infer_signature(trained.bundle.score_table(example).to_pandas()).inputs
            signature = mlflow.models.ModelSignature(inputs=None, outputs=outputs)
            info = mlflow.pyfunc.log_model(name="model", signature=signature, python_model=str(MODEL_CODE),
                                           artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
                                           pip_requirements=PIP_REQUIREMENTS, registered_model_name=name,
                                           await_registration_for=60)
            version = int(info.registered_model_version)
            registration = self._gate(name, trained, version, run.info.run_id, validation_table, y_validation,
                                      metric, gate_split)
            mlflow.set_tags({"promoted": str(registration.promoted), "gate_reason": registration.reason})
        self.client.set_model_version_tag(name, str(version), "gate", registration.reason)
        log.info("model registered", **registration.as_dict())
        return registration

    def _gate(self, name: str, trained, version: int, run_id: str, table, y, metric: str,
              split: str) -> Registration:
        kind = trained.kind
        current = self.champion_version(kind)
        candidate = trained.metrics[split].get(metric)
        previous = None
        if current is None:
            promoted, reason = True, "first version: no champion yet"
        elif y is None or not 0 < int(np.sum(y)) < len(y):
            promoted, reason = False, (f"kept v{current}: the {split} days have no labelled abuse to compare "
                                       "the versions on")
        else:
            try:
                champion = self.load(kind)
                # at the champion's own cut: an ensemble's tuned threshold, 0.5 for a model (see ml.base)
                cut = champion.ensemble.threshold if hasattr(champion, "ensemble") else 0.5
                previous = classification_metrics(y, champion.score_samples(table), cut).get(metric)
            except Exception as error:  # an unusable champion is replaced, and the reason says so
                promoted, reason = True, f"champion v{current} could not score the {split} days: {error}"
            else:
                promoted = metric_value({"m": candidate}, "m") > metric_value({"m": previous}, "m")
                reason = (f"{metric} on the {split} days {_fmt(candidate)} vs champion v{current} {_fmt(previous)}: "
                          + ("promoted" if promoted else "kept the champion"))
        if promoted:
            self._set_champion(name, version)
        return Registration(name, version, run_id, promoted, reason, version if promoted else current, metric,
                            candidate, previous)

    def _set_champion(self, name: str, version: int) -> None:
        self.client.set_registered_model_alias(name, self.settings.champion_alias, str(version))
        history = self._history(name)
        if not history or history[-1] != version:
            history.append(version)
        self.client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))

    def _history(self, name: str) -> list[int]:
        tags = self.client.get_registered_model(name).tags
        return [int(v) for v in json.loads(tags.get(HISTORY_TAG, "[]"))]

    def rollback(self, kind: str, to_version: int | None = None) -> tuple[int | None, int]:
        """Move the champion alias back: to `to_version`, or to the champion before the current one."""
        from mlflow.exceptions import MlflowException

        name = self.model_name(kind)
        try:
            versions = {int(v.version) for v in self.client.search_model_versions(f"name='{name}'")}
        except MlflowException as error:
            raise ModelError(f"{name}: {error}") from error
        if not versions:
            raise ModelError(f"{name} has no registered versions")
        current = self.champion_version(kind)
        if to_version is None:
            # The history is a stack of promotions: drop the current champion, the one below takes over.
            history = [v for v in self._history(name) if v in versions]
            while history and history[-1] == current:
                history.pop()
            if not history:
                raise ModelError(f"{name}: no earlier champion to roll back to; name a version with --to")
            to_version = history[-1]
            self.client.set_registered_model_alias(name, self.settings.champion_alias, str(to_version))
            self.client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
            return current, to_version
        if to_version not in versions:
            raise ModelError(f"{name} has no version {to_version}; versions: {sorted(versions)}")
        self._set_champion(name, to_version)
        return current, to_version

    def describe(self) -> list[dict]:
        """Every registered model of ours: versions, champion, and the validation metric of each version."""
        rows = []
        for kind in KINDS:
            name = self.model_name(kind)
            champion = self.champion_version(kind)
            for version in sorted(self.client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version)):
                metrics = self.client.get_run(version.run_id).data.metrics if version.run_id else {}
                rows.append({"name": name, "version": int(version.version), "champion": int(version.version) == champion,
                             "run_id": version.run_id, "gate": version.tags.get("gate", ""),
                             "validation_average_precision": metrics.get("validation_average_precision"),
                             "test_average_precision": metrics.get("test_average_precision")})
        return rows


def _extractor_of(bundle):
    if hasattr(bundle, "extractor"):
        return bundle.extractor
    return next(iter(bundle.members.values())).extractor


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _flat(params: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = str(value)[:500]
    return out


def _jsonable(value):
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))
