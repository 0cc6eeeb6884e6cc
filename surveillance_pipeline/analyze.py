"""`surveillance analyze`: trade (and order) files through the whole asset graph, in-process, into
DIR/alerts.csv, DIR/alerts.json, DIR/report.pdf and DIR/summary.json.

The files are read and validated with the importer (presets, column mapping), split by UTC day and landed in
a private workspace (its own landing folder, warehouse and SQLite store: nothing of the configured store is
touched), then every day runs `daily_batch_job` in order, so each day sees the days before it as history.
Models: the champions of the configured MLflow store when registered, otherwise unsupervised models fitted
on each day itself; the summary says which.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from surveillance_pipeline.config import Settings
from surveillance_pipeline.contract import Alert, Trade
from surveillance_pipeline.detectors.alerts import write_alerts
from surveillance_pipeline.detectors.files import FileDetection, read_valid_rows
from surveillance_pipeline.engine.engine import empty_alerts
from surveillance_pipeline.ingest.importer import ImportOptions
from surveillance_pipeline.ingest.presets import ORDERS, TRADES
from surveillance_pipeline.ml.registry import resolve_tracking_uri
from surveillance_pipeline.reporting.analyst_common import write_json


class AnalyzeError(RuntimeError):
    """Input that cannot be analysed (nothing readable, no day in range), said plainly."""


@dataclass
class AnalyzeResult:
    out_dir: Path
    days: list[date]
    alerts: pl.DataFrame
    files: dict[str, Path]
    summary: dict = field(default_factory=dict)


def _land(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.with_columns(pl.col(Trade.TIMESTAMP).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")).write_csv(path)


def analyze(trades: list[Path], orders: list[Path], out_dir: Path, settings: Settings, preset: str | None = None,
            first_day: date | None = None, last_day: date | None = None, keep_workspace: bool = False,
            progress=print) -> AnalyzeResult:
    began = time.perf_counter()
    read = FileDetection()
    mapping = dict(settings.ingest.column_mapping)
    trade_rows = read_valid_rows(trades, ImportOptions(kind=TRADES, preset=preset, mapping=mapping), settings, read)
    order_rows = read_valid_rows(orders, ImportOptions(kind=ORDERS, mapping=mapping), settings, read)
    if trade_rows.is_empty():
        raise AnalyzeError("no valid trade rows in " + ", ".join(map(str, trades)) +
                           " (`surveillance validate` shows why each row was rejected)")
    stamp = pl.col(Trade.TIMESTAMP).dt.date()
    days = sorted(d for d in trade_rows.select(stamp.unique()).to_series().to_list()
                  if (first_day is None or d >= first_day) and (last_day is None or d <= last_day))
    if not days:
        raise AnalyzeError(f"no trades between {first_day or 'the start'} and {last_day or 'the end'}")
    anonymous = trade_rows.select(pl.col(Trade.BUYER_ID).is_null().all() & pl.col(Trade.SELLER_ID).is_null().all()
                                  ).item()
    out_dir.mkdir(parents=True, exist_ok=True)
    workspace = Path(tempfile.mkdtemp(prefix=".analyze-", dir=out_dir))
    env = {
        "SURVEILLANCE__PATHS__DATA_DIR": str(workspace),
        "SURVEILLANCE__PATHS__LANDING_DIR": str(workspace / "landing"),
        "SURVEILLANCE__PATHS__WAREHOUSE_DIR": str(workspace / "warehouse"),
        "SURVEILLANCE__PATHS__REJECTS_DIR": str(workspace / "rejects"),
        "SURVEILLANCE__PATHS__ALERTS_DIR": str(workspace / "alerts"),
        "SURVEILLANCE__PATHS__REPORTS_DIR": str(workspace / "reports"),
        "DATABASE_URL": f"sqlite:///{workspace / 'surveillance.db'}",
        "MLFLOW_TRACKING_URI": resolve_tracking_uri(settings.services.mlflow_tracking_uri, settings.root),
    }
    try:
        for day in days:
            on_day = stamp == day
            _land(trade_rows.filter(on_day), workspace / "landing" / day.isoformat() / "trades.csv")
            if order_rows.height:
                _land(order_rows.filter(on_day), workspace / "landing" / day.isoformat() / "orders.csv")
        env["SURVEILLANCE__PARTITIONS__START_DATE"] = days[0].isoformat()
        _run_graph(days, env, progress)
        alerts, scores = _collect(workspace / "warehouse", days)
        files = dict(zip(("alerts_csv", "alerts_json"), write_alerts(alerts, out_dir)))
        summary = _summary(days, alerts, scores, read, anonymous, time.perf_counter() - began)
        files["report"] = _report(out_dir, days, alerts, scores, trade_rows)
        files["summary"] = out_dir / "summary.json"
        write_json(files["summary"], summary)
        return AnalyzeResult(out_dir, days, alerts, files, summary)
    finally:
        if not keep_workspace:
            shutil.rmtree(workspace, ignore_errors=True)


def _run_graph(days: list[date], env: dict[str, str], progress) -> None:
    """The daily job for each day in order, in a child process: the partitions must start at the first day
    of the data (Dagster fixes them when the code location is imported), and a run's memory is returned to
    the system when it ends. An ephemeral Dagster instance: nothing is added to the configured run history."""
    child_env = {**os.environ, **env}
    child_env.pop("DAGSTER_HOME", None)
    command = [sys.executable, "-m", "surveillance_pipeline.analyze", *[d.isoformat() for d in days]]
    with subprocess.Popen(command, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        for line in child.stdout:
            progress(line.rstrip())
        errors = child.stderr.read()
    if child.returncode != 0:
        tail = "\n".join(line for line in errors.strip().splitlines()[-12:])
        raise AnalyzeError(f"the daily graph failed (exit {child.returncode}):\n{tail}")


def _main(days: list[str]) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    from surveillance_pipeline.definitions import run_daily_batch

    for day in days:
        began = time.perf_counter()
        print(f"{day}: ingest -> features -> rules -> models -> alerts -> reports", flush=True)
        run_daily_batch(day)
        print(f"{day}: done in {time.perf_counter() - began:.1f} s", flush=True)


def _collect(warehouse: Path, days: list[date]) -> tuple[pl.DataFrame, pl.DataFrame]:
    alerts = [pl.read_parquet(p) for d in days if (p := warehouse / "alerts" / f"{d}.parquet").exists()]
    scores = [pl.read_parquet(p) for d in days if (p := warehouse / "model_scores" / f"{d}.parquet").exists()]
    table = pl.concat(alerts, how="vertical_relaxed") if alerts else empty_alerts()
    return table.sort(Alert.WINDOW_START, Alert.PATTERN), (pl.concat(scores, how="diagonal_relaxed") if scores
                                                           else pl.DataFrame())


def _summary(days, alerts: pl.DataFrame, scores: pl.DataFrame, read: FileDetection, anonymous: bool,
             seconds: float) -> dict:
    count = (lambda c: dict(alerts.group_by(c).len().sort(c).iter_rows())) if alerts.height else (lambda c: {})
    source = sorted(set(scores.get_column("model_source").to_list())) if "model_source" in scores.columns else []
    versions = sorted(set(scores.get_column("model_versions").to_list())) if "model_versions" in scores.columns else []
    models = ("no account ids in the trades (an anonymous tape): market-level detectors only, no account "
              "scores" if anonymous else
              "champion models of the MLflow store: " + "; ".join(versions) if "champion" in source else
              "no champion registered: unsupervised models fitted on each day's own account-days" if source else
              "no model scores")
    return {
        "days": [d.isoformat() for d in days], "alerts": alerts.height,
        "by_pattern": count(Alert.PATTERN), "by_risk_level": count(Alert.RISK_LEVEL),
        "input": {"rows": read.rows, "rejected_rows": read.rejected},
        "anonymous": anonymous, "models": models, "model_source": source,
        "account_days_scored": scores.height, "seconds": round(seconds, 1),
    }


def _report(out_dir: Path, days: list[date], alerts: pl.DataFrame, scores: pl.DataFrame,
            trades: pl.DataFrame) -> Path:
    from surveillance_pipeline.engine.activity import hourly_activity
    from surveillance_pipeline.reporting.analyst import daily_summary

    with tempfile.TemporaryDirectory(dir=out_dir) as folder:
        written = daily_summary(Path(folder), days[0], days[-1], alerts, scores, hourly_activity(trades))
        target = out_dir / "report.pdf"
        os.replace(written["pdf"], target)
    return target


if __name__ == "__main__":
    _main(sys.argv[1:])
