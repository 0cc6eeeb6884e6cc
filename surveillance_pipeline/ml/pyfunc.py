"""The MLflow pyfunc face of a saved bundle: `mlflow.pyfunc.load_model("models:/<name>@champion")` gives a
model whose `predict(feature_table)` returns the score table, and whose `unwrap_python_model().bundle` is the
ModelBundle / EnsembleBundle itself. Imported only where MLflow is used."""
from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pandas as pd
import polars as pl

from surveillance_pipeline.ml.bundle import load_bundle

BUNDLE_ARTIFACT = "bundle"


class BundleModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.bundle = load_bundle(Path(context.artifacts[BUNDLE_ARTIFACT]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        table = pl.from_pandas(model_input)
        return self.bundle.score_table(table).to_pandas()
