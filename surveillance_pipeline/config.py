"""Settings: `config/surveillance.yaml` loaded into pydantic models, overridable by environment variables.

Naming rule for overrides: ``SURVEILLANCE__<SECTION>__<KEY>`` (upper case, double underscores between
levels), e.g. ``SURVEILLANCE__INGEST__BATCH_ROWS=50000``. Values are parsed as YAML scalars/lists
(``true``, ``42``, ``[a, b]``). A few conventional variables are honoured too: ``DATABASE_URL``,
``REDIS_URL``, ``MLFLOW_TRACKING_URI``. ``SURVEILLANCE_CONFIG`` points to another YAML file.
Relative paths in the file are resolved against the project root: the folder holding ``config/`` when the
file lies in a folder named ``config``, else the file's own folder.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from surveillance_pipeline.contract import Trade
from surveillance_pipeline.detectors.settings import RulesSettings
from surveillance_pipeline.engine.settings import EngineSettings
from surveillance_pipeline.evaluation import EvaluationSettings
from surveillance_pipeline.ml.settings import MLSettings

ENV_PREFIX = "SURVEILLANCE__"
CONVENTIONAL_ENV = {
    "DATABASE_URL": ("database", "url"),
    "REDIS_URL": ("services", "redis_url"),
    "MLFLOW_TRACKING_URI": ("services", "mlflow_tracking_uri"),
    "EXCHANGE_MCP_URL": ("market", "mcp_url"),
}
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "config" / "surveillance.yaml"


class ConfigError(ValueError):
    """An invalid configuration value, naming the key, where it came from and why it is wrong."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsSettings(_Section):
    data_dir: Path = Path("data")
    landing_dir: Path = Path("data/landing")
    warehouse_dir: Path = Path("data/warehouse")
    rejects_dir: Path = Path("data/rejects")
    labels_dir: Path = Path("data/labels")
    models_dir: Path = Path("data/models")
    alerts_dir: Path = Path("data/alerts")
    reports_dir: Path = Path("data/reports")


class DatabaseSettings(_Section):
    url: str = "sqlite:///data/surveillance.db"
    pool_size: int = Field(5, ge=1, le=100)
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError("expected a sqlite:/// or postgresql:// URL")
        return value


class IngestSettings(_Section):
    batch_rows: int = Field(200_000, ge=1_000, description="rows per streamed chunk")
    min_timestamp: datetime = datetime(2009, 1, 3, tzinfo=timezone.utc)  # the Bitcoin genesis block
    max_future_seconds: int = Field(86_400, ge=0, description="how far past 'now' a timestamp may lie")
    rejected_ratio_warn: float = Field(0.01, ge=0.0, le=1.0)
    # target contract column -> source column, for files no preset covers
    column_mapping: dict[str, str] = Field(default_factory=dict)

    @field_validator("min_timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    @field_validator("column_mapping")
    @classmethod
    def _targets_in_contract(cls, value: dict[str, str]) -> dict[str, str]:
        from surveillance_pipeline.contract import ORDER_SCHEMA, TRADE_SCHEMA

        unknown = sorted(set(value) - set(TRADE_SCHEMA) - set(ORDER_SCHEMA))
        if unknown:
            raise ValueError(f"unknown target column(s) {unknown}; expected names like {Trade.PRICE!r}")
        return value


class FeatureSelectionSettings(_Section):
    include: list[str] = Field(default_factory=list)  # empty: every feature in the catalogue
    exclude: list[str] = Field(default_factory=list)
    variance_min: float = Field(1e-12, ge=0.0, description="drop features whose scaled variance is below")
    correlation_max: float = Field(0.95, gt=0.0, le=1.0, description="drop the later of two features above")
    compress_tails: bool = Field(True, description="after robust scaling, x -> sign(x)·log(1+|x|) so that extreme "
                                 "accounts do not swamp distances and squared errors")


class FeatureSettings(_Section):
    lookback_days: int = Field(7, ge=1, le=90, description="days of history (the day included) for week features")
    reversal_seconds: int = Field(60, ge=1, description="horizon of the price move before/after a trade")
    round_trip_tolerance_bps: float = Field(10.0, ge=0.0, description="'same price' for back-and-forth trades")
    large_order_multiple: float = Field(5.0, gt=1.0, description="large = this x the account's median order size")
    fast_cancel_ms: int = Field(1_000, ge=1, description="a cancel this soon after the order is 'fast'")
    rush_window_ms: int = Field(1, ge=1, description="market buys within this window form one rush order")
    cluster_seconds: float = Field(1.0, gt=0.0, description="a trade this soon after the previous one is clustered")
    session_hours: dict[str, tuple[int, int]] = Field(
        default_factory=lambda: {"asia": (0, 8), "europe": (8, 16), "americas": (16, 24)})
    selection: FeatureSelectionSettings = FeatureSelectionSettings()


class PartitionSettings(_Section):
    start_date: str = Field("2026-01-01", pattern=r"^\d{4}-\d{2}-\d{2}$")
    landing_file_glob: str = "*"


class ServicesSettings(_Section):
    redis_url: str | None = None
    mlflow_tracking_uri: str = "mlflow"


class BatchSettings(_Section):
    concurrency: int = Field(2, ge=1, le=64, description="partitions run at a time by `surveillance backfill`")
    max_concurrent_steps: int = Field(2, ge=1, le=64, description="steps of one run in parallel (Dagster's "
                                      "multiprocess executor) when a run is launched from the UI or a schedule")


class MarketSettings(_Section):
    mcp_url: str | None = Field(None, description="the exchange's MCP server (streamable HTTP), e.g. "
                                "http://127.0.0.1:8765/mcp; EXCHANGE_MCP_URL overrides")
    markets: list[str] = Field(default_factory=list, description="futures markets to collect; empty: every market "
                               "the server lists")
    quote: str = "USDT"
    snapshot_ttl_seconds: int = Field(300, ge=1, description="how long Redis keeps the latest ticker of a market")
    retention_history_days: int = Field(365, ge=1, description="funding, premium, basis and liquidations kept")
    retention_snapshot_days: int = Field(30, ge=1, description="order-book and ticker snapshots kept")


class LoggingSettings(_Section):
    level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    json_lines: bool = False


class Settings(_Section):
    paths: PathsSettings = PathsSettings()
    database: DatabaseSettings = DatabaseSettings()
    ingest: IngestSettings = IngestSettings()
    features: FeatureSettings = FeatureSettings()
    partitions: PartitionSettings = PartitionSettings()
    services: ServicesSettings = ServicesSettings()
    logging: LoggingSettings = LoggingSettings()
    batch: BatchSettings = BatchSettings()
    market: MarketSettings = MarketSettings()
    detectors: RulesSettings = RulesSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    models: MLSettings = MLSettings()
    engine: EngineSettings = EngineSettings()
    root: Path = PROJECT_ROOT

    def resolve(self, path: Path) -> Path:
        """A configured path made absolute against the project root."""
        return path if path.is_absolute() else self.root / path

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path made absolute against the project root."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite:///:memory:":
            return prefix + str(self.resolve(Path(url[len(prefix):])))
        return url


def _env_value(raw: str) -> Any:
    """Numbers, booleans, lists and mappings are parsed as YAML; anything else (dates too) stays text."""
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        return raw
    return value if isinstance(value, (bool, int, float, list, dict)) or value is None else raw


def _env_overrides(environ: dict[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """Nested overrides from the environment, and which variable set each key."""
    overrides: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}

    def put(keys: tuple[str, ...], raw: str, variable: str) -> None:
        node = overrides
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = _env_value(raw)
        origins[keys] = variable

    for variable, keys in CONVENTIONAL_ENV.items():
        if environ.get(variable):
            put(keys, environ[variable], variable)
    for variable, raw in environ.items():
        if variable.upper().startswith(ENV_PREFIX):
            keys = tuple(part.lower() for part in variable[len(ENV_PREFIX):].split("__") if part)
            if keys:
                put(keys, raw, variable)
    return overrides, origins


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(path: Path | str | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read the YAML file, apply environment overrides, validate; raise ConfigError naming the bad key."""
    environ = dict(os.environ if environ is None else environ)
    config_path = Path(path or environ.get("SURVEILLANCE_CONFIG") or DEFAULT_CONFIG_PATH)
    file_values: dict[str, Any] = {}
    if config_path.exists():
        try:
            file_values = yaml.safe_load(config_path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config_path}: not valid YAML: {exc}") from exc
        if not isinstance(file_values, dict):
            raise ConfigError(f"{config_path}: expected a mapping of sections at the top level")
    elif path is not None:
        raise ConfigError(f"{config_path}: configuration file not found")
    overrides, origins = _env_overrides(environ)
    values = _merge(file_values, overrides)
    folder = config_path.resolve().parent
    values.setdefault("root", str(folder.parent if folder.name == "config" else folder))
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            keys = tuple(str(part) for part in error["loc"])
            source = origins.get(keys[:2]) or origins.get(keys)
            where = f"environment variable {source}" if source else str(config_path)
            reason = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"config key '{'.'.join(keys)}' ({where}): {reason}")
        raise ConfigError("; ".join(problems)) from None
