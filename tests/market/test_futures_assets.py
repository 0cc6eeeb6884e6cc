"""Collected futures days -> futures features and futures alerts (stored with the day's other alerts)."""
from __future__ import annotations

import polars as pl
import sqlalchemy as sa
from dagster import materialize

import assets.futures
import assets.market
from resources.database import DatabaseResource
from resources.io_managers import PolarsParquetIOManager
from resources.market import MarketDataResource
from resources.settings import SettingsResource
from surveillance_pipeline.engine.store import read_alerts, save_alert_day
from surveillance_pipeline.evaluation import evaluate
from surveillance_pipeline.market.futures_scenarios import generate_futures
from surveillance_pipeline.storage.database import Database
from surveillance_pipeline.storage.models import alerts_table
from tests.engine.test_engine import DAY as EQUITY_DAY, rule_alerts
from tests.market.test_collection_and_sensor import ReplayHttp
from tests.market.test_replay_client import _free_port

DAYS = ["2026-03-02", "2026-03-03", "2026-03-04"]
OI_PATTERNS = ["position_concentration", "funding_rate_farming"]


def test_collected_days_give_futures_features_and_alerts(tmp_path, monkeypatch):
    monkeypatch.setenv("SURVEILLANCE__PATHS__ALERTS_DIR", str(tmp_path / "alerts"))
    scenario = generate_futures(days=3, seed=12)
    scenario.store.save(tmp_path / "replay")
    server = ReplayHttp(tmp_path / "replay", _free_port())
    server.start()
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    resources = {"settings": SettingsResource(), "database": DatabaseResource(url=url),
                 "io_manager": PolarsParquetIOManager(base_dir=str(tmp_path / "warehouse")),
                 "market_data": MarketDataResource(url=server.url)}
    db = Database(url)
    db.migrate()
    equity = rule_alerts(("spoofing", 0.6, "BTCUSDT", "a", 0))  # another writer's alert on the first day
    from surveillance_pipeline.engine.engine import DetectionEngine

    save_alert_day(db, EQUITY_DAY, DetectionEngine().combine(EQUITY_DAY, equity))
    try:
        for day in DAYS:
            assert materialize([assets.market.futures_market_data], partition_key=day, resources=resources).success
    finally:
        server.stop()
    for day in DAYS:
        result = materialize([assets.market.futures_market_data, assets.futures.futures_features,
                              assets.futures.futures_detections], partition_key=day, resources=resources,
                             selection=["futures_features", "futures_detections"])
        assert result.success
    features = pl.read_parquet(tmp_path / "warehouse" / "futures_features" / f"{DAYS[1]}.parquet")
    assert sorted(features["market"]) == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert features["premium_max_abs_bps"].is_not_null().all() and features["liquidations"].min() > 0
    import datetime as dt

    stored = read_alerts(db, dt.date.fromisoformat(DAYS[0]), dt.date.fromisoformat(DAYS[-1]))
    futures = stored.filter(pl.col("sources") == "futures rules")
    assert futures.height > 0 and (futures["user_ids"] == "").all()
    assert stored.filter(pl.col("pattern") == "spoofing").height == 1  # the other writer's alert is kept
    # a hunt within one minute shows only in the k-lines, and the k-line tool answers the latest 1440 bars: a
    # collection run after the fact has them for the last day only (a daily run at the day's end has its own)
    one_minute_hunt = (pl.col("pattern") == "liquidation_hunting") & (pl.col("end") - pl.col("start") <= dt.timedelta(
        minutes=2)) & (pl.col("start").dt.date().cast(pl.String) != DAYS[-1])
    judged_days = scenario.labels.filter(pl.col("start").dt.date().cast(pl.String).is_in(DAYS[1:])
                                         & ~pl.col("pattern").is_in(OI_PATTERNS) & ~one_minute_hunt)
    report = evaluate(futures.filter(pl.col("date").cast(pl.String).is_in(DAYS[1:])), judged_days)
    assert report.macro_recall >= 0.8 and report.macro_precision == 1.0
    assert (tmp_path / "alerts" / DAYS[1] / "futures" / "alerts.json").exists()
    with db.transaction() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(alerts_table)).scalar_one()
    materialize([assets.market.futures_market_data, assets.futures.futures_detections], partition_key=DAYS[1],
                resources=resources, selection=["futures_detections"])
    with db.transaction() as conn:  # a re-run replaces its own alerts, not more
        assert conn.execute(sa.select(sa.func.count()).select_from(alerts_table)).scalar_one() == before
    db.dispose()
