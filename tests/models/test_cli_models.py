"""`surveillance train` and `surveillance models list | rollback` on a throw-away MLflow store."""
from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from surveillance_pipeline.cli import app
from tests.models.conftest import DAYS, FAST_YAML

runner = CliRunner()


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "surveillance.yaml"
    config.write_text(f"paths:\n  models_dir: {tmp_path / 'models'}\n" + FAST_YAML)
    return config


def test_train_registers_prints_metrics_and_writes_the_report(tmp_path, tracking_uri):
    config = _config(tmp_path)
    result = runner.invoke(app, ["train", "--seed", "3", "--tracking-uri", tracking_uri, "--config", str(config),
                                 "--report", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert f"training on {DAYS} days of generated scenarios (seed 3)" in result.output
    for model in ("isolation_forest", "autoencoder", "random_forest", "ensemble"):
        assert f"{model:<18} test" in result.output
        assert f"registered surveillance-{model.replace('_', '-')} v1 (champion)" in result.output
    assert (tmp_path / "report" / "report.pdf").exists() and (tmp_path / "report" / "roc.png").exists()

    listed = runner.invoke(app, ["models", "list", "--tracking-uri", tracking_uri, "--config", str(config)])
    assert listed.exit_code == 0 and listed.output.count("* surveillance-") == 4

    # Same seed again: equal, not better, so the champions stay at v1; rollback to v2 and back.
    again = runner.invoke(app, ["train", "--seed", "3", "--tracking-uri", tracking_uri, "--config", str(config),
                                "--report", str(tmp_path / "report2")])
    assert again.exit_code == 0, again.output
    assert "registered surveillance-random-forest v2 (champion stays v1)" in again.output
    moved = runner.invoke(app, ["models", "rollback", "random-forest", "--to", "2", "--tracking-uri", tracking_uri,
                                "--config", str(config)])
    assert moved.exit_code == 0 and "champion v1 -> v2" in moved.output
    back = runner.invoke(app, ["models", "rollback", "random-forest", "--tracking-uri", tracking_uri,
                               "--config", str(config)])
    assert back.exit_code == 0 and "champion v2 -> v1" in back.output
    none = runner.invoke(app, ["models", "rollback", "random-forest", "--tracking-uri", tracking_uri,
                               "--config", str(config)])
    assert none.exit_code == 1 and "no earlier champion" in none.output


def test_train_refuses_too_few_days_and_list_says_when_empty(tmp_path, tracking_uri):
    config = _config(tmp_path)
    result = runner.invoke(app, ["train", "--scenario-days", "2", "--tracking-uri", tracking_uri,
                                 "--config", str(config)])
    assert result.exit_code == 2 and "at least 3" in result.output
    listed = runner.invoke(app, ["models", "list", "--tracking-uri", tracking_uri, "--config", str(config)])
    assert listed.exit_code == 0 and "no registered models" in listed.output
    unknown = runner.invoke(app, ["models", "rollback", "nope", "--tracking-uri", tracking_uri, "--config", str(config)])
    assert unknown.exit_code == 1 and "unknown model" in unknown.output
