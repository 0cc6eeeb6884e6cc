from pathlib import Path

import pytest

from surveillance_pipeline.config import ConfigError, load_settings


def test_defaults_load_from_the_project_file():
    settings = load_settings(environ={})
    assert settings.ingest.batch_rows == 200_000
    assert settings.database_url == f"sqlite:///{settings.root / 'data' / 'surveillance.db'}"


def test_environment_overrides_follow_the_naming_rule():
    settings = load_settings(environ={
        "SURVEILLANCE__INGEST__BATCH_ROWS": "50000",
        "SURVEILLANCE__LOGGING__JSON_LINES": "true",
        "SURVEILLANCE__INGEST__COLUMN_MAPPING": "{price: px}",
        "DATABASE_URL": "postgresql://u@db:5432/s",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    })
    assert settings.ingest.batch_rows == 50_000
    assert settings.logging.json_lines is True
    assert settings.ingest.column_mapping == {"price": "px"}
    assert settings.database_url == "postgresql://u@db:5432/s"
    assert settings.services.redis_url == "redis://127.0.0.1:6379/0"


def test_invalid_environment_value_names_key_and_variable():
    with pytest.raises(ConfigError) as error:
        load_settings(environ={"SURVEILLANCE__INGEST__BATCH_ROWS": "5"})
    assert str(error.value) == ("config key 'ingest.batch_rows' (environment variable "
                                "SURVEILLANCE__INGEST__BATCH_ROWS): Input should be greater than or equal to 1000")


def test_invalid_file_value_names_key_and_file(tmp_path: Path):
    path = tmp_path / "config" / "bad.yaml"
    path.parent.mkdir()
    path.write_text("database:\n  url: mysql://x\ningest:\n  rejected_ratio_warn: 2\n  colour: blue\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path, environ={})
    assert str(error.value) == (
        f"config key 'database.url' ({path}): Value error, expected a sqlite:/// or postgresql:// URL; "
        f"config key 'ingest.rejected_ratio_warn' ({path}): Input should be less than or equal to 1; "
        f"config key 'ingest.colour' ({path}): unknown key"
    )


def test_unknown_mapping_target_and_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"unknown target column\(s\) \['colour'\]"):
        load_settings(environ={"SURVEILLANCE__INGEST__COLUMN_MAPPING": "{colour: c}"})
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_settings(tmp_path / "missing.yaml", environ={})


def test_relative_paths_resolve_against_the_project_root(tmp_path: Path):
    path = tmp_path / "config" / "surveillance.yaml"
    path.parent.mkdir()
    path.write_text("paths:\n  landing_dir: in/landing\ndatabase:\n  url: sqlite:///state/s.db\n")
    settings = load_settings(path, environ={})
    assert settings.resolve(settings.paths.landing_dir) == tmp_path / "in" / "landing"
    assert settings.database_url == f"sqlite:///{tmp_path / 'state' / 's.db'}"
