"""Logged as MLflow "model from code" (no pickled Python object): MLflow runs this file when loading."""
import mlflow.models

from surveillance_pipeline.ml.pyfunc import BundleModel

mlflow.models.set_model(BundleModel())
