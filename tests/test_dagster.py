"""The Dagster layer: assets materialised per partition, checks, the landing sensor, the nightly schedule."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest
from dagster import (
    DagsterInstance,
    build_schedule_context,
    build_sensor_context,
    materialize,
)

import assets.checks
import assets.ingestion
import assets.storage
from resources.database import DatabaseResource
from resources.io_managers import PolarsParquetIOManager
from resources.settings import SettingsResource
from schedules.nightly_batch_schedule import nightly_batch_schedule
from sensors.landing_folder_sensor import landing_folder_sensor
from surveillance_pipeline.storage.database import Database
from tests.conftest import TRADE_HEADER

DAY = "2026-03-02"
ORDER_HEADER = "order_id,timestamp,user_id,symbol,side,price,quantity,event\n"
TRADES = (TRADE_HEADER
          + "t1,2026-03-02T10:00:00Z,BTCUSDT,buy,60000,0.5,a,b\n"
          + "t2,2026-03-02T10:00:01.250Z,BTCUSDT,sell,59990,0.25,c,a\n"
          + "t3,2026-03-02T10:00:02Z,BTCUSDT,sell,-1,0.25,c,a\n"
          + "t4,2026-03-03T00:00:02Z,BTCUSDT,sell,59990,0.25,c,a\n")
ORDERS = (ORDER_HEADER
          + "o1,2026-03-02T09:59:59Z,b,BTCUSDT,sell,60000,0.5,new\n"
          + "o2,2026-03-02T10:00:00Z,a,BTCUSDT,buy,60000,0.5,new\n")


@pytest.fixture
def project(tmp_path: Path, monkeypatch):
    for name, value in {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'surveillance.db'}",
        "SURVEILLANCE__PATHS__LANDING_DIR": str(tmp_path / "landing"),
        "SURVEILLANCE__PATHS__WAREHOUSE_DIR": str(tmp_path / "warehouse"),
        "SURVEILLANCE__PATHS__REJECTS_DIR": str(tmp_path / "rejects"),
    }.items():
        monkeypatch.setenv(name, value)
    landing = tmp_path / "landing" / DAY
    landing.mkdir(parents=True)
    (landing / "trades.csv").write_text(TRADES)
    (landing / "orders.csv").write_text(ORDERS)
    return tmp_path


def _resources(root: Path) -> dict:
    return {
        "settings": SettingsResource(),
        "database": DatabaseResource(url=f"sqlite:///{root / 'surveillance.db'}"),
        "io_manager": PolarsParquetIOManager(base_dir=str(root / "warehouse")),
    }


ASSETS = [assets.ingestion.raw_trades, assets.ingestion.raw_orders, assets.ingestion.validated_trades,
          assets.ingestion.validated_orders, assets.storage.stored_trades, assets.storage.stored_orders]


def test_partition_materialises_idempotently(project: Path):
    for _ in range(2):
        result = materialize(ASSETS, partition_key=DAY, resources=_resources(project))
        assert result.success
    database = Database(f"sqlite:///{project / 'surveillance.db'}")
    trades = database.read_trades(datetime(2026, 3, 2, tzinfo=timezone.utc), datetime(2026, 3, 4, tzinfo=timezone.utc))
    assert trades["trade_id"].to_list() == ["t1", "t2"]  # written twice, stored once
    assert trades["timestamp"][1] == datetime(2026, 3, 2, 10, 0, 1, 250000, tzinfo=timezone.utc)
    counts = database.counts()
    assert (counts["orders"], counts["imports"], counts["rejected_rows"]) == (2, 2, 2)  # re-run replaced the records
    rejects = pl.read_parquet(project / "warehouse" / "trade_rejects" / f"{DAY}.parquet")
    assert rejects.select("line", "field", "reason").rows() == [
        (4, "price", "must be a finite number > 0, got -1"),
        (5, "timestamp", "not on the partition's day 2026-03-02 (UTC)"),
    ]
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["validated_trades_check"].passed and checks["validated_orders_check"].passed
    assert not checks["trade_rejects_ratio_check"].passed  # 2 of 4 rows rejected: above the 1 % warning level
    assert checks["trade_rejects_ratio_check"].severity.value == "WARN"
    assert (project / "warehouse" / "validated_trades" / f"{DAY}.parquet").exists()
    database.dispose()


def test_rows_already_stored_on_another_day_are_rejected(project: Path):
    materialize(ASSETS, partition_key=DAY, resources=_resources(project))
    other = project / "landing" / "2026-03-03"
    other.mkdir()
    (other / "trades.csv").write_text(TRADE_HEADER + "t1,2026-03-03T10:00:00Z,BTCUSDT,buy,60000,0.5,a,b\n")
    result = materialize(ASSETS[:5:2] + ASSETS[4:5], partition_key="2026-03-03", resources=_resources(project),
                         selection=["raw_trades", "validated_trades", "trade_rejects", "stored_trades"])
    rejects = pl.read_parquet(project / "warehouse" / "trade_rejects" / "2026-03-03.parquet")
    assert result.success and rejects["reason"].to_list() == ["trade_id 't1' for symbol BTCUSDT is already stored"]


def test_blocking_contract_check_fails_on_duplicates_and_nulls():
    from surveillance_pipeline.contract import TRADE_SCHEMA

    frame = pl.DataFrame({
        "trade_id": ["t1", "t1"], "timestamp": [datetime(2026, 3, 2, tzinfo=timezone.utc)] * 2,
        "symbol": ["BTCUSDT", "BTCUSDT"], "side": ["buy", None], "price": [1.0, 1.0], "quantity": [1.0, 1.0],
    }).with_columns(*[pl.lit(None, dtype).alias(c) for c, dtype in TRADE_SCHEMA.items()
                      if c not in ("trade_id", "timestamp", "symbol", "side", "price", "quantity")]).cast(TRADE_SCHEMA)
    result = assets.checks.contract_check("trades", frame)
    assert not result.passed
    assert result.metadata["problems"].value == ("null values in required columns {'side': 1}; "
                                                 "1 duplicate keys ['symbol', 'trade_id']")


def _tick(instance, cursor=None):
    return landing_folder_sensor(build_sensor_context(instance=instance, cursor=cursor,
                                                      resources={"settings": SettingsResource()}))


def test_landing_sensor_requests_one_run_per_day_and_file_version(project: Path):
    instance = DagsterInstance.ephemeral()
    first = _tick(instance)
    assert [(r.partition_key, r.tags["landing_files"]) for r in first.run_requests] == [
        (DAY, "orders.csv, trades.csv")]  # files of one day land together: one run
    again = _tick(instance, first.cursor)
    assert not again.run_requests  # the same files are never processed twice
    trades = project / "landing" / DAY / "trades.csv"
    trades.write_text(TRADES + "t9,2026-03-02T11:00:00Z,BTCUSDT,buy,60000,0.5,a,b\n")
    os.utime(trades, ns=(trades.stat().st_atime_ns, trades.stat().st_mtime_ns + 1_000_000_000))
    rewritten = _tick(instance, again.cursor)
    assert [(r.partition_key, r.tags["landing_files"]) for r in rewritten.run_requests] == [(DAY, "trades.csv")]
    assert rewritten.run_requests[0].run_key != first.run_requests[0].run_key
    assert json.loads(rewritten.cursor)[str(trades)].endswith(str(trades.stat().st_size))


def test_landing_sensor_waits_for_days_that_are_not_partitions_yet(project: Path):
    instance = DagsterInstance.ephemeral()
    future = project / "landing" / "2099-01-01"
    future.mkdir()
    (future / "trades.csv").write_text(TRADES)
    tick = _tick(instance)
    assert [r.partition_key for r in tick.run_requests] == [DAY]
    assert str(future / "trades.csv") not in json.loads(tick.cursor)  # retried until 2099-01-01 is a partition
    later = _tick(instance, tick.cursor)
    assert not later.run_requests and "2099-01-01: not a partition yet" in later.skip_reason.skip_message


def test_nightly_schedule_runs_yesterday_once():
    context = build_schedule_context(scheduled_execution_time=datetime(2026, 3, 3, 0, 30, tzinfo=timezone.utc))
    request = nightly_batch_schedule(context)
    assert (request.partition_key, request.run_key) == ("2026-03-02", "2026-03-02")
    # ... of the whole graph: ingestion to alerts and reports
    from surveillance_pipeline.definitions import defs

    job = defs.get_repository_def().get_job(nightly_batch_schedule.job_name)
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert {"raw_trades", "validated_trades", "account_features", "rule_detections", "model_scores", "alerts",
            "reports"} <= keys


def test_definitions_load_everything():
    from surveillance_pipeline.definitions import defs

    repository = defs.get_repository_def()
    keys = {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()}
    assert keys == {"raw_trades", "raw_orders", "validated_trades", "trade_rejects", "validated_orders",
                    "order_rejects", "stored_trades", "stored_orders", "account_features", "market_features",
                    "rule_detections", "training_set", "isolation_forest_model", "autoencoder_model",
                    "random_forest_model", "model_ensemble", "model_scores", "alerts", "reports",
                    "futures_market_data", "futures_features", "futures_detections"}
    checks = {key.name for key in repository.asset_graph.asset_check_keys}
    assert checks == {"validated_trades_check", "validated_orders_check", "trade_rejects_ratio_check",
                      "order_rejects_ratio_check", "account_features_drift_check", "market_features_drift_check"}
    assert repository.get_sensor_def("landing_folder_sensor")
    assert repository.get_schedule_def("nightly_batch_schedule")
    assert repository.get_schedule_def("weekly_retraining_schedule")
    assert repository.get_sensor_def("futures_market_sensor") and repository.get_job("futures_collection_job")
    assert repository.get_job("daily_batch_job") and repository.get_job("retraining_job")
    daily = {k.to_user_string() for k in repository.get_job("daily_batch_job").asset_layer.executable_asset_keys}
    assert {"model_scores", "alerts", "reports"} <= daily and "training_set" not in daily


def test_a_day_without_trade_files_fails_and_without_orders_keeps_stored_orders(project: Path):
    materialize(ASSETS, partition_key=DAY, resources=_resources(project))
    (project / "landing" / DAY / "orders.csv").unlink()
    orders_only = materialize(ASSETS, partition_key=DAY, resources=_resources(project),
                              selection=["raw_orders", "validated_orders", "order_rejects", "stored_orders"])
    assert orders_only.success
    database = Database(f"sqlite:///{project / 'surveillance.db'}")
    assert database.counts()["orders"] == 2  # kept, not wiped by an empty day
    database.dispose()
    (project / "landing" / DAY / "trades.csv").unlink()
    result = materialize(ASSETS, partition_key=DAY, resources=_resources(project), raise_on_error=False,
                         selection=["raw_trades"])
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error.message
    assert f"no trades files for {DAY}" in failure
