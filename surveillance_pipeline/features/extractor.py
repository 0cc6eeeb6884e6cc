"""The feature vector per account-day: selection (configured list, variance and correlation pruning) and
robust scaling fitted on training data, saved with the model as plain JSON-able state."""
from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import polars as pl

from surveillance_pipeline.config import FeatureSelectionSettings
from surveillance_pipeline.features.base import ACCOUNT, DATE

KEY_COLUMNS = (ACCOUNT, DATE)


def _finite_or_null(values: pl.DataFrame) -> pl.DataFrame:
    """NaN and ±inf (a ratio over zero) count as missing: the median stands in and the indicator says so."""
    return values.with_columns(pl.when(pl.all().is_finite()).then(pl.all()).name.keep())


class FeatureExtractor:
    """fit / transform in scikit-learn's manner: `__init__` stores settings, `fit` learns (trailing `_`).

    Robust scaling: (x − median) / IQR per feature (IQR 0 → scale 1), so that a few extreme accounts —
    the ones surveillance looks for — do not squash everyone else. Missing values become the median
    (0 after scaling) and every feature keeps a `<name>_missing` indicator only if it is ever missing in
    training, so a model can tell "no orders" from "an ordinary value".

    With `compress_tails` (the default), every scaled value x becomes sign(x)·log(1 + |x|): the order of
    account-days is kept, but an account 3,000 IQRs from the median no longer outweighs everything else in a
    squared error (the autoencoder) or a random split range (IsolationForest); trees are unaffected.
    """

    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = (), variance_min: float = 1e-12,
                 correlation_max: float = 0.95, compress_tails: bool = True) -> None:
        self.compress_tails = compress_tails
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.variance_min = variance_min
        self.correlation_max = correlation_max

    @classmethod
    def from_settings(cls, settings: FeatureSelectionSettings) -> FeatureExtractor:
        return cls(settings.include, settings.exclude, settings.variance_min, settings.correlation_max,
                   settings.compress_tails)

    def _candidates(self, table: pl.DataFrame) -> list[str]:
        numeric = [c for c, dtype in table.schema.items() if c not in KEY_COLUMNS and dtype.is_numeric()]
        if self.include:
            unknown = sorted(set(self.include) - set(numeric))
            if unknown:
                raise ValueError(f"features.selection.include names unknown features {unknown}")
            numeric = [c for c in numeric if c in self.include]
        return [c for c in numeric if c not in self.exclude]

    def fit(self, table: pl.DataFrame) -> FeatureExtractor:
        """Learn medians, IQRs and the selected features from training account-days."""
        candidates = self._candidates(table)
        values = _finite_or_null(table.select(pl.col(candidates).cast(pl.Float64)))
        median = values.median().row(0)
        q75, q25 = values.quantile(0.75, "linear").row(0), values.quantile(0.25, "linear").row(0)
        self.center_ = {c: (m if m is not None else 0.0) for c, m in zip(candidates, median)}
        self.scale_ = {c: ((hi - lo) if hi is not None and lo is not None and hi - lo > 0 else 1.0)
                       for c, hi, lo in zip(candidates, q75, q25)}
        self.missing_indicators_ = [c for c in candidates if values.get_column(c).null_count() > 0]
        scaled = self._scale(values, candidates)
        variances = scaled.var().row(0, named=True)
        kept = [c for c in candidates if (variances[c] or 0.0) > self.variance_min]
        self.features_ = self._prune_correlated(scaled.select(kept)) if kept else []
        self.dropped_ = {c: "low variance" for c in candidates if c not in kept}
        self.dropped_.update({c: "correlated" for c in kept if c not in self.features_})
        return self

    def _scale(self, values: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
        scaled = [((pl.col(c).fill_null(self.center_[c]) - self.center_[c]) / self.scale_[c]) for c in columns]
        if self.compress_tails:
            scaled = [expr.sign() * expr.abs().log1p() for expr in scaled]
        return values.select(expr.alias(c) for expr, c in zip(scaled, columns))

    def _prune_correlated(self, scaled: pl.DataFrame) -> list[str]:
        matrix = scaled.to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.corrcoef(matrix, rowvar=False) if matrix.shape[0] > 1 else np.eye(matrix.shape[1])
        corr = np.atleast_2d(np.nan_to_num(corr))
        kept: list[int] = []
        for i in range(matrix.shape[1]):  # keep the first of a correlated pair (catalogue order)
            if all(abs(corr[i, j]) <= self.correlation_max for j in kept):
                kept.append(i)
        return [scaled.columns[i] for i in kept]

    @property
    def output_names_(self) -> list[str]:
        return self.features_ + [f"{c}_missing" for c in self.missing_indicators_ if c in self.features_]

    def transform(self, table: pl.DataFrame) -> pl.DataFrame:
        """Keys plus the scaled, selected features (and missing indicators) of each account-day."""
        if not hasattr(self, "features_"):
            raise RuntimeError("FeatureExtractor is not fitted: call fit() on training account-days first")
        absent = [c for c in self.features_ if c not in table.columns]
        if absent:
            raise ValueError(f"the feature table lacks fitted features {absent}")
        values = _finite_or_null(table.select(pl.col(self.features_).cast(pl.Float64)))
        indicators = [values.get_column(c).is_null().cast(pl.Float64).alias(f"{c}_missing")
                      for c in self.missing_indicators_ if c in self.features_]
        keys = table.select([c for c in KEY_COLUMNS if c in table.columns])
        return pl.concat([keys, self._scale(values, self.features_), pl.DataFrame(indicators)], how="horizontal")

    def fit_transform(self, table: pl.DataFrame) -> pl.DataFrame:
        return self.fit(table).transform(table)

    def to_dict(self) -> dict:
        """Everything needed to transform later: saved with the model (JSON)."""
        return {
            "params": {"include": list(self.include), "exclude": list(self.exclude),
                       "variance_min": self.variance_min, "correlation_max": self.correlation_max,
                       "compress_tails": self.compress_tails},
            "features": self.features_, "center": self.center_, "scale": self.scale_,
            "missing_indicators": self.missing_indicators_, "dropped": self.dropped_,
        }

    @classmethod
    def from_dict(cls, state: dict) -> FeatureExtractor:
        extractor = cls(**state["params"])
        extractor.features_ = list(state["features"])
        extractor.center_ = dict(state["center"])
        extractor.scale_ = dict(state["scale"])
        extractor.missing_indicators_ = list(state["missing_indicators"])
        extractor.dropped_ = dict(state["dropped"])
        return extractor

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeatureExtractor:
        return cls.from_dict(json.loads(text))
