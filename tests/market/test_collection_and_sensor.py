"""Collection of futures market data and the futures sensor, against our replay server over streamable HTTP."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from dagster import build_sensor_context, materialize

import assets.market
from resources.database import DatabaseResource
from resources.io_managers import PolarsParquetIOManager
from resources.market import MarketDataResource
from resources.settings import SettingsResource
from sensors.futures_market_sensor import futures_market_sensor
from surveillance_pipeline.market.client import MarketDataClient, MarketDataError
from surveillance_pipeline.storage.database import Database
from surveillance_pipeline.storage.models import funding_rates_table, snapshots_table
from tests.market.test_replay_client import _free_port, store  # noqa: F401  (the fixture)

DAY = "2026-03-02"


class ReplayHttp:
    def __init__(self, folder, port: int) -> None:
        self.folder, self.port, self.process = folder, port, None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "surveillance_pipeline.cli", "market", "serve", "--data", str(self.folder),
             "--transport", "http", "--port", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = MarketDataClient(url=self.url, timeout_seconds=3, retries=20, backoff_seconds=0.2)
        probe.list_markets("futures")  # waits until it answers

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def replay(store, tmp_path):  # noqa: F811
    store.save(tmp_path / "replay")
    server = ReplayHttp(tmp_path / "replay", _free_port())
    server.start()
    yield server
    if server.process.poll() is None:
        server.stop()


def _resources(tmp_path, url: str) -> dict:
    return {"settings": SettingsResource(), "database": DatabaseResource(url=f"sqlite:///{tmp_path / 'db.sqlite'}"),
            "io_manager": PolarsParquetIOManager(base_dir=str(tmp_path / "warehouse")),
            "market_data": MarketDataResource(url=url, retries=1, backoff_seconds=0.05)}


def test_collection_stores_the_day_idempotently_and_caches_tickers(replay, tmp_path, monkeypatch):
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("REDIS_URL", redis_url)
    for _ in range(2):  # the same partition twice: the day's rows replaced, not doubled
        result = materialize([assets.market.futures_market_data], partition_key=DAY,
                             resources=_resources(tmp_path, replay.url))
        assert result.success
    meta = {k: v.value for k, v in result.get_asset_materialization_events()[-1]
            .event_specific_data.materialization.metadata.items()}
    assert meta["markets"] == ["BTCUSDT"] and meta["rows_by_table"]["futures_funding_rates"] == 1
    assert "get_liquidation_history BTCUSDT" in meta["unavailable"]  # said, never invented
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with db.transaction() as conn:
        funding = conn.execute(sa.select(funding_rates_table.c.actual_funding_rate)).scalars().all()
        snaps = conn.execute(sa.select(sa.func.count()).select_from(snapshots_table)).scalar_one()
    db.dispose()
    assert funding == [0.0015] and snaps == 5  # 2 runs x (ticker + order book), the day's k-lines once
    assert meta["redis_cache"] == "on"
    from surveillance_pipeline.market.collect import SnapshotCache

    cached = SnapshotCache(redis_url).get("BTCUSDT")
    assert cached and cached["data"][0]["last"] == 102.0
    assert SnapshotCache(None).enabled is False and "REDIS_URL" in SnapshotCache(None).reason


def test_sensor_requests_runs_for_new_data_fails_visibly_and_recovers(replay, tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    if os.environ.get("REDIS_URL"):  # no ticker cached by an earlier test
        import redis

        redis.Redis.from_url(os.environ["REDIS_URL"]).delete("market:BTCUSDT:ticker")
    resources = {"settings": SettingsResource(), "database": DatabaseResource(url=url),
                 "market_data": MarketDataResource(url=replay.url, retries=0, timeout_seconds=3)}
    def tick(cursor=None):
        with build_sensor_context(cursor=cursor, resources=resources) as context:  # the database is a resource
            return futures_market_sensor(context), context.cursor

    requests, cursor = tick()
    assert [r.partition_key for r in requests] == [DAY] and "BTCUSDT@" in requests[0].run_key
    again, _ = tick(cursor)
    assert "no new data" in again.skip_message
    db = Database(url)
    with db.transaction() as conn:  # every tick stores a ticker and an order book: the open-interest history
        kinds = conn.execute(sa.select(snapshots_table.c.kind)).scalars().all()
    db.dispose()
    assert sorted(kinds) == ["orderbook", "orderbook", "ticker", "ticker"]
    from surveillance_pipeline.market.collect import SnapshotCache

    if os.environ.get("REDIS_URL"):  # the freshest ticker is cached too
        assert SnapshotCache(os.environ["REDIS_URL"]).get("BTCUSDT")["data"][0]["last"] == 102.0
    replay.stop()
    with pytest.raises(MarketDataError, match="get_ticker|list_markets|get_funding_rate"):
        tick(cursor)
    replay.start()
    time.sleep(0.2)
    recovered, _ = tick(cursor)
    assert "no new data" in recovered.skip_message


def test_retention_deletes_only_what_is_past_its_age(tmp_path):
    from datetime import UTC, datetime, timedelta

    from dagster import build_schedule_context

    from schedules.retention_schedule import retention_job, retention_schedule
    from surveillance_pipeline.market.retention import apply_retention

    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.migrate()
    now = datetime(2026, 6, 1, tzinfo=UTC)
    with db.transaction() as conn:
        conn.execute(sa.insert(funding_rates_table), [
            {"market": "BTCUSDT", "funding_time": now - timedelta(days=d), "actual_funding_rate": 0.0001,
             "theoretical_funding_rate": 0.0001, "source": "test"} for d in (1, 100, 400)])
        conn.execute(sa.insert(snapshots_table), [
            {"market": "BTCUSDT", "market_type": "futures", "kind": "ticker", "taken_at": now - timedelta(days=d),
             "data": {"last": 1}, "source": "test"} for d in (1, 40)])
    deleted = apply_retention(db, history_days=365, snapshot_days=30, now=now)
    assert deleted["futures_funding_rates"] == 1 and deleted["market_snapshots"] == 1
    with db.transaction() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(funding_rates_table)).scalar_one() == 2
    db.dispose()
    assert retention_schedule.cron_schedule == "15 2 * * *" and retention_schedule.job_name == "retention_job"
    assert retention_schedule(build_schedule_context()) == {}
    result = retention_job.execute_in_process(resources={
        "settings": SettingsResource(), "database": DatabaseResource(url=f"sqlite:///{tmp_path / 'db.sqlite'}")})
    assert result.success
