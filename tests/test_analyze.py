"""`surveillance analyze`: files through the whole asset graph into alerts, a report and a summary."""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from surveillance_pipeline.cli import app
from surveillance_pipeline.config import load_settings
from surveillance_pipeline.evaluation import evaluate
from surveillance_pipeline.scenarios import ScenarioSpec, generate_scenario, write_scenario

runner = CliRunner()
PUMP_TAPE = Path(__file__).resolve().parents[2] / "shared" / "data" / "pumps_dev" / "CVC_2019-08-13_20.00.csv.gz"


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    folder = tmp_path_factory.mktemp("analyze-scenario")
    generated = generate_scenario(ScenarioSpec(days=2, seed=21, accounts=400, trades_per_day=5_000))
    return generated, write_scenario(generated, folder)


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "surveillance.yaml"  # the model fallback kept small for the test
    config.write_text("models:\n  fallback_models: [isolation_forest]\n")
    return config


@pytest.fixture(autouse=True)
def _empty_model_store(tmp_path, monkeypatch):
    """No champion: another test of the session may have trained into the shared default store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(tmp_path / "mlflow"))


def _analyze(args: list[str], tmp_path: Path):
    return runner.invoke(app, ["analyze", *args, "--config", str(_config(tmp_path))])


def test_generated_scenario_gives_alerts_report_and_summary(scenario, tmp_path):
    generated, paths = scenario
    out = tmp_path / "out"
    result = _analyze(["--trades", str(paths["trades"]), "--orders", str(paths["orders"]), "--out", str(out)],
                      tmp_path)
    assert result.exit_code == 0, result.output
    for name in ("alerts.csv", "alerts.json", "report.pdf", "summary.json"):
        assert (out / name).exists(), name
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["days"] == ["2026-03-02", "2026-03-03"] and not summary["anonymous"]
    assert "no champion registered" in summary["models"]  # the test's MLflow store is empty
    alerts = pl.read_csv(out / "alerts.csv", try_parse_dates=True)
    assert alerts.height == summary["alerts"] > 0
    report = evaluate(pl.DataFrame(json.loads((out / "alerts.json").read_text())).with_columns(
        pl.col("window_start", "window_end").str.to_datetime(time_zone="UTC")), generated.labels,
        load_settings().evaluation)
    assert report.macro_recall >= 0.9 and report.macro_precision >= 0.9
    assert not list(out.glob(".analyze-*"))  # the private workspace is removed


@pytest.mark.skipif(not PUMP_TAPE.exists(), reason=f"{PUMP_TAPE} is absent")
def test_anonymous_pump_tape_gives_market_level_alerts_only(tmp_path):
    out = tmp_path / "out"
    result = _analyze(["--trades", str(PUMP_TAPE), "--out", str(out), "--from", "2019-08-12", "--to",
                       "2019-08-14"], tmp_path)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["anonymous"] and "anonymous tape" in summary["models"]
    assert summary["days"] == ["2019-08-12", "2019-08-13", "2019-08-14"]
    alerts = json.loads((out / "alerts.json").read_text())
    assert alerts and {a["pattern"] for a in alerts} == {"pump_and_dump"}
    assert all(a["user_ids"] in ("", None) for a in alerts)
    assert any(a["window_start"].startswith("2019-08-13T20") for a in alerts)  # the known pump, 20:00 UTC


@pytest.mark.skipif(not PUMP_TAPE.exists(), reason=f"{PUMP_TAPE} is absent")
def test_scenario_and_pump_tape_at_once(scenario, tmp_path):
    _, paths = scenario
    out = tmp_path / "out"
    result = _analyze(["--trades", str(paths["trades"]), "--trades", str(PUMP_TAPE), "--orders",
                       str(paths["orders"]), "--out", str(out), "--from", "2019-08-13", "--to", "2026-03-02"],
                      tmp_path)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["days"][0] == "2019-08-13" and summary["days"][-1] == "2026-03-02"
    patterns = set(summary["by_pattern"])
    assert "pump_and_dump" in patterns and len(patterns) >= 4


def test_zero_alerts_still_exit_zero_and_bad_input_is_a_clear_error(tmp_path):
    quiet = tmp_path / "quiet.csv"
    quiet.write_text("trade_id,timestamp,symbol,side,price,quantity,buyer_id,seller_id\n"
                     "t1,2026-03-02T10:00:00Z,BTCUSDT,buy,60000,0.1,a,b\n"
                     "t2,2026-03-02T11:00:00Z,BTCUSDT,sell,60010,0.1,c,d\n")
    out = tmp_path / "out"
    result = _analyze(["--trades", str(quiet), "--out", str(out)], tmp_path)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["alerts"] == 0
    assert (out / "report.pdf").exists() and (out / "alerts.csv").exists()
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("this,is,not\na,trade,file\n")
    failed = _analyze(["--trades", str(garbage), "--out", str(tmp_path / "x")], tmp_path)
    assert failed.exit_code == 1 and "garbage.csv" in failed.output
    missing = _analyze(["--trades", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "y")], tmp_path)
    assert missing.exit_code == 1 and "nope.csv" in missing.output
