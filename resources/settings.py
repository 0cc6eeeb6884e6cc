"""The project settings as a Dagster resource (config/surveillance.yaml + environment overrides)."""

from dagster import ConfigurableResource

from surveillance_pipeline.config import Settings, load_settings


class SettingsResource(ConfigurableResource):
    """Loads the validated settings; `config_path` overrides SURVEILLANCE_CONFIG / the default file."""

    config_path: str | None = None

    def get(self) -> Settings:
        return load_settings(self.config_path)
