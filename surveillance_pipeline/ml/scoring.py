"""Scoring account-days: the champion ensemble when registered; with members missing or failing the vote
is renormalised over the rest; with no champion at all, unsupervised models fitted on the day itself. Every
score row says which models took part and where they came from."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import polars as pl

from surveillance_pipeline.config import FeatureSelectionSettings
from surveillance_pipeline.features.base import ACCOUNT, DATE
from surveillance_pipeline.features.extractor import FeatureExtractor
from surveillance_pipeline.log import get_logger
from surveillance_pipeline.ml.base import ModelError
from surveillance_pipeline.ml.bundle import SCORE_SCHEMA, EnsembleBundle, ModelBundle
from surveillance_pipeline.ml.settings import MLSettings

log = get_logger(__name__)
SELF_FITTED = "self-fitted"
CHAMPION = "champion"
MEMBER_KINDS = ("isolation_forest", "autoencoder", "random_forest")


class TooFewAccountDays(ModelError):
    """No champion, and too few account-days to fit unsupervised models on: the day is left unscored."""


@dataclass
class Scorer:
    bundle: EnsembleBundle
    source: str                     # "champion" | "self-fitted"
    versions: dict[str, str] = field(default_factory=dict)   # registered model -> version (champions)
    note: str = ""

    def score(self, table: pl.DataFrame) -> pl.DataFrame:
        """The score table of `table`'s account-days (schema: bundle.SCORE_SCHEMA + per-model scores)."""
        if table.is_empty():
            return pl.DataFrame(schema={**SCORE_SCHEMA, "failed_models": pl.String, "model_source": pl.String,
                                        "model_versions": pl.String})
        scores = self.bundle.score_table(table)
        return scores.with_columns(pl.lit(self.source).alias("model_source"),
                                   pl.lit(json.dumps(self.versions, sort_keys=True)).alias("model_versions"))


def champion_scorer(registry, settings: MLSettings) -> Scorer | None:
    """The registered champions as a scorer: the ensemble champion (self-contained, with the members it was
    tuned with) if there is one, else the member champions that exist under the configured weights."""
    ensemble_version = registry.champion_version("ensemble")
    if ensemble_version is not None:
        bundle = registry.load("ensemble")
        return Scorer(bundle, CHAMPION, {registry.model_name("ensemble"): str(ensemble_version)})
    members, versions = {}, {}
    for kind in MEMBER_KINDS:
        version = registry.champion_version(kind)
        if version is not None:
            members[kind] = registry.load(kind)
            versions[registry.model_name(kind)] = str(version)
    if not members:
        return None
    weights = {k: settings.ensemble.weights.get(k, 0.0) for k in members}
    if not any(weights.values()):
        weights = {k: 1.0 for k in members}
    note = (f"no ensemble champion: member champions {sorted(members)} combined with the configured weights")
    return Scorer(EnsembleBundle(members, settings.ensemble, weights), CHAMPION, versions, note)


def self_fitted_scorer(table: pl.DataFrame, settings: MLSettings,
                       selection: FeatureSelectionSettings = FeatureSelectionSettings()) -> Scorer:
    """Unsupervised models (settings.fallback_models) fitted on the account-days they will score: an
    account-day is then judged against the others of the same data, not against learned history."""
    from surveillance_pipeline.ml.trainer import _model_class

    features = table.drop("label", "patterns", "split", strict=False)
    extractor = FeatureExtractor.from_settings(selection).fit(features)
    if not extractor.features_:
        raise ModelError("self-fitted scoring: no feature varies across these account-days")
    X = extractor.transform(features).select(extractor.output_names_).to_numpy()
    members = {}
    for kind in settings.fallback_models:
        model = _model_class(kind)(getattr(settings, kind))
        members[kind] = ModelBundle(model.fit(X), extractor)
    weights = {k: settings.ensemble.weights.get(k, 1.0) or 1.0 for k in members}
    note = f"no champion registered: {', '.join(members)} fitted on these {table.height} account-days"
    return Scorer(EnsembleBundle(members, settings.ensemble, weights), SELF_FITTED, {}, note)


def score_account_days(table: pl.DataFrame, settings: MLSettings, registry=None,
                       selection: FeatureSelectionSettings = FeatureSelectionSettings()) -> tuple[pl.DataFrame, Scorer]:
    """Scores of every account-day in `table` and the scorer that gave them."""
    scorer = champion_scorer(registry, settings) if registry is not None else None
    if scorer is None:
        if table.height < 10:
            raise TooFewAccountDays(f"no champion model registered and only {table.height} account-days to fit "
                             "unsupervised models on: train first (`surveillance train`)")
        scorer = self_fitted_scorer(table, settings, selection)
    if scorer.note:
        log.info("scoring", source=scorer.source, note=scorer.note)
    return scorer.score(table).sort("score", descending=True).select(ACCOUNT, DATE, pl.exclude(ACCOUNT, DATE)), scorer
