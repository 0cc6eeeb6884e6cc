"""The `surveillance` command line: exit codes and what it prints."""
from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from surveillance_pipeline.cli import app
from tests.conftest import FIXTURES, TRADE_HEADER

runner = CliRunner()


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SURVEILLANCE__PATHS__REJECTS_DIR", str(tmp_path / "rejects"))
    return tmp_path


def test_import_stores_valid_rows_and_reports_rejects(env):
    path = env / "trades.csv"
    path.write_text(TRADE_HEADER + "t1,2024-03-01T10:00:00Z,BTCUSDT,buy,1,1,a,b\n"
                    "t2,2024-03-01T10:00:00Z,BTCUSDT,buy,x,1,a,b\n")
    result = runner.invoke(app, ["import", str(path)])
    assert result.exit_code == 0, result.output
    assert "partial" in result.output and "2 rows read, 1 accepted, 1 rejected" in result.output
    assert f"{path}:3: price: not a number: 'x'" in result.output
    assert "rejected rows written to" in result.output


def test_import_exits_non_zero_when_nothing_was_importable(env):
    path = env / "trades.csv"
    path.write_text(TRADE_HEADER + "t2,2024-03-01T10:00:00Z,BTCUSDT,buy,x,1,a,b\n")
    assert runner.invoke(app, ["import", str(path)]).exit_code == 1
    broken = env / "broken.csv"
    broken.write_text("a,b\n1,2\n")
    result = runner.invoke(app, ["import", str(broken)])
    assert result.exit_code == 1
    assert "no preset matches the columns (a, b)" in result.output


def test_import_detects_presets_of_real_files(env):
    result = runner.invoke(app, ["import", str(FIXTURES / "real_samples" / "binance_btcusdt-trades.parquet"),
                                 str(FIXTURES / "pumps" / "ONG_2019-10-29_18.00.csv.gz")])
    assert result.exit_code == 0, result.output
    assert "preset binance_trades" in result.output and "preset pump_tape" in result.output


def test_validate_and_strict(env):
    path = env / "trades.csv"
    path.write_text(TRADE_HEADER + "t1,2024-03-01T10:00:00Z,BTCUSDT,buy,1,1,a,b\n"
                    "t2,2024-03-01T10:00:00Z,BTCUSDT,short,1,1,a,b\n")
    result = runner.invoke(app, ["validate", str(path), "--strict"])
    assert result.exit_code == 1
    assert "strict: whole file rejected" in result.output
    assert "side: must be 'buy' or 'sell', got 'short'" in result.output


def test_mapping_option(env):
    path = env / "venue.csv"
    path.write_text("id,ts,pair,taker,px,qty\n9,1709287200000,BTCUSDT,sell,1,1\n")
    args = ["validate", str(path)] + [f"--map={m}" for m in
                                      ("trade_id=id", "timestamp=ts", "symbol=pair", "side=taker", "price=px", "quantity=qty")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["validate", str(path), "--map", "price"]).exit_code == 2


def test_config_show_and_validate(env, monkeypatch):
    shown = runner.invoke(app, ["config", "show"])
    assert shown.exit_code == 0
    assert json.loads(shown.stdout)["database"]["url"].endswith("cli.db")
    monkeypatch.setenv("SURVEILLANCE__INGEST__REJECTED_RATIO_WARN", "2")
    bad = runner.invoke(app, ["config", "validate"])
    assert bad.exit_code == 2
    assert "config key 'ingest.rejected_ratio_warn' (environment variable SURVEILLANCE__INGEST__REJECTED_RATIO_WARN)" in bad.output


def test_every_command_has_help():
    for command in (["--help"], ["generate", "--help"], ["import", "--help"], ["validate", "--help"],
                    ["config", "show", "--help"], ["config", "validate", "--help"], ["demo", "--help"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0 and "Usage" in result.output


def test_json_lines_logging(env, monkeypatch):
    monkeypatch.setenv("SURVEILLANCE__LOGGING__JSON_LINES", "true")
    path = env / "trades.csv"
    path.write_text(TRADE_HEADER + "t1,2024-03-01T10:00:00Z,BTCUSDT,buy,1,1,a,b\n")
    result = runner.invoke(app, ["import", str(path)])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    finished = [e for e in events if e["event"] == "import finished"]
    assert finished and finished[0]["rows_accepted"] == 1 and finished[0]["level"] == "info"


def test_generate_writes_a_labelled_scenario(tmp_path):
    result = runner.invoke(app, ["generate", "--out", str(tmp_path / "s"), "--days", "1", "--seed", "3",
                                 "--trades-per-day", "2000", "--accounts", "80", "--symbols", "BTCUSDT,ETHUSDT"])
    assert result.exit_code == 0, result.output
    labels = pl.read_csv(tmp_path / "s" / "labels.csv")
    assert set(labels["symbol"]) <= {"BTCUSDT", "ETHUSDT"} and labels.height > 0
    clean = runner.invoke(app, ["generate", "--out", str(tmp_path / "c"), "--trades-per-day", "2000",
                                "--accounts", "80", "--clean"])
    assert clean.exit_code == 0 and pl.read_csv(tmp_path / "c" / "labels.csv").height == 0


def test_evaluate_scores_alerts_and_writes_json(tmp_path):
    scenario = tmp_path / "s"
    generated = runner.invoke(app, ["generate", "--out", str(scenario), "--seed", "5", "--trades-per-day", "2000",
                                    "--accounts", "60"])
    assert generated.exit_code == 0, generated.output
    labels = pl.read_csv(scenario / "labels.csv")
    # One alert per episode plus one on an account that took no part: recall 1, one false alert.
    perfect = labels.select(pl.col("episode_id").alias("alert_id"), "pattern", "symbol", "user_ids",
                            pl.col("start").alias("window_start"), pl.col("end").alias("window_end"))
    stray = perfect.head(1).with_columns(pl.lit("stray").alias("alert_id"), pl.lit("nobody").alias("user_ids"),
                                         pl.lit("pump_and_dump").alias("pattern"), pl.lit("XRPUSDT").alias("symbol"))
    pl.concat([perfect, stray]).write_csv(tmp_path / "alerts.csv")
    result = runner.invoke(app, ["evaluate", "--alerts", str(tmp_path / "alerts.csv"), "--labels",
                                 str(scenario / "labels.csv"), "--trades", str(scenario / "trades.csv"),
                                 "--slack-minutes", "1"])
    assert result.exit_code == 0, result.output
    assert "macro" in result.stdout and "wash_trading" in result.stdout and "false/100k trades" in result.stdout
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["macro"]["recall"] == 1.0 and report["totals"]["false_alerts"] == 1
    assert report["totals"]["episodes"] == labels.height and report["settings"]["slack_minutes"] == 1.0
    assert report["totals"]["trade_count"] == pl.read_csv(scenario / "trades.csv").height
    pump = next(row for row in report["patterns"] if row["pattern"] == "pump_and_dump")
    assert pump["false_alert_ids"] == ["stray"]
    assert runner.invoke(app, ["evaluate", "--help"]).exit_code == 0


def test_evaluate_clean_mode_and_bad_input(tmp_path):
    alerts = tmp_path / "alerts.csv"
    alerts.write_text("alert_id,pattern,symbol,user_ids,window_start,window_end\n"
                      "a1,spoofing,BTCUSDT,u1,2026-03-02T10:00:00Z,2026-03-02T10:01:00Z\n")
    out_file = tmp_path / "report" / "clean.json"
    clean = runner.invoke(app, ["evaluate", "--alerts", str(alerts), "--clean", "--trade-count", "50000",
                                "--out", str(out_file)])
    assert clean.exit_code == 0, clean.output
    assert json.loads(out_file.read_text())["totals"]["false_alerts_per_100k_trades"] == 2.0
    assert runner.invoke(app, ["evaluate", "--alerts", str(alerts), "--clean"]).exit_code == 2
    assert runner.invoke(app, ["evaluate", "--alerts", str(alerts)]).exit_code == 2
    alerts.write_text("alert_id,pattern,symbol,user_ids,window_start,window_end\n"
                      "a1,spoofing,BTCUSDT,u1,2026-03-02T10:00:00Z,soon\n")
    bad = runner.invoke(app, ["evaluate", "--alerts", str(alerts), "--clean", "--trade-count", "10"])
    assert bad.exit_code == 1 and isinstance(bad.exception, SystemExit)
    assert f"{alerts}:2: window_end: expected an ISO-8601 UTC timestamp, got 'soon'" in bad.stderr
    assert "Traceback" not in bad.output


def test_detect_writes_alerts_that_evaluate_scores(tmp_path):
    scenario = tmp_path / "s"
    assert runner.invoke(app, ["generate", "--out", str(scenario), "--seed", "6", "--trades-per-day", "3000",
                               "--accounts", "80"]).exit_code == 0
    result = runner.invoke(app, ["detect", "--trades", str(scenario / "trades.csv"), "--orders",
                                 str(scenario / "orders.csv"), "--out", str(tmp_path / "alerts")])
    assert result.exit_code == 0, result.output
    assert "1 day(s)" in result.stdout and "wash_trading" in result.stdout
    rows = json.loads((tmp_path / "alerts" / "alerts.json").read_text())
    labels = pl.read_csv(scenario / "labels.csv")
    assert len(rows) >= labels.height and all(r["explanation"] and r["evidence"] for r in rows)
    scored = runner.invoke(app, ["evaluate", "--alerts", str(tmp_path / "alerts" / "alerts.csv"), "--labels",
                                 str(scenario / "labels.csv")])
    assert scored.exit_code == 0
    assert json.loads((tmp_path / "alerts" / "evaluation.json").read_text())["macro"]["recall"] == 1.0
    # a day outside --from/--to: no alerts; an unreadable file: exit 1 with the reason
    none = runner.invoke(app, ["detect", "--trades", str(scenario / "trades.csv"), "--from", "2030-01-01",
                               "--out", str(tmp_path / "none")])
    assert none.exit_code == 0 and "0 day(s)" in none.stdout
    (tmp_path / "broken.csv").write_text("nothing,useful\n1,2\n")
    broken = runner.invoke(app, ["detect", "--trades", str(tmp_path / "broken.csv"), "--out", str(tmp_path / "b")])
    assert broken.exit_code == 1 and "broken.csv" in broken.stderr
    assert runner.invoke(app, ["detect", "--trades", "x.csv", "--from", "yesterday"]).exit_code == 2
