"""MLflow as a Dagster resource of our own (not dagster-mlflow: see STACK.md): the model registry."""
from dagster import ConfigurableResource

from surveillance_pipeline.config import Settings
from surveillance_pipeline.ml.registry import ModelRegistry


class MLflowResource(ConfigurableResource):
    """`tracking_uri`: a server URL, a database URI or a local folder; None: the configured
    `services.mlflow_tracking_uri` (MLFLOW_TRACKING_URI), by default the project's `mlflow/` folder."""

    tracking_uri: str | None = None

    def registry(self, settings: Settings) -> ModelRegistry:
        from surveillance_pipeline.ml.service import registry_for

        return registry_for(settings, self.tracking_uri)
