"""Open-interest history from stored ticker snapshots: what the futures sensor and the monitoring loop take about
once a minute, read back by a monitoring pass (and the daily futures assets) to judge the open-interest patterns."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from surveillance_pipeline.evaluation import evaluate
from surveillance_pipeline.market.client import MarketDataClient
from surveillance_pipeline.market.collect import save_snapshots
from surveillance_pipeline.market.futures_scenarios import generate_futures
from surveillance_pipeline.market.monitor import OI_PATTERNS, monitor_once
from surveillance_pipeline.market.replay import build_server
from surveillance_pipeline.market.stored import snapshot_tables, stored_market_tables
from surveillance_pipeline.storage.database import Database

START, END = datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 4, 23, 59, tzinfo=UTC)


def _ticker_snapshots(scenario, since: datetime, keep: float = 0.9, seed: int = 0) -> list[dict]:
    """A ticker snapshot per market about every minute after `since` (some minutes missed, seconds jittered), as
    `collect.take_snapshots` stores them."""
    rng = np.random.default_rng(seed)
    oi = scenario.store.tables["open_interest"].join(scenario.store.tables["mark"], on=["market", "created_at"])
    snaps = []
    for market, at, volume, mark in oi.filter(pl.col("created_at") >= since).select(
            "market", "created_at", "open_interest_volume", "mark_price").iter_rows():
        if rng.random() < keep:
            snaps.append({"market": market, "market_type": "futures", "kind": "ticker",
                          "taken_at": at + timedelta(seconds=int(rng.integers(0, 50))), "source": "test",
                          "data": [{"market": market, "mark_price": mark, "open_interest_volume": volume}]})
    return snaps


def _db(tmp_path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.migrate()
    return db


def test_a_pass_judges_open_interest_from_dense_snapshots(tmp_path):
    scenario = generate_futures(days=3, seed=4)
    assert set(OI_PATTERNS) <= set(scenario.labels["pattern"])
    db = _db(tmp_path)
    save_snapshots(db, _ticker_snapshots(scenario, START))
    client = MarketDataClient(server=build_server(scenario.store))
    result = monitor_once(client, start=START, end=END, db=db)
    assert result.not_assessed == [] and min(result.oi_coverage.values()) > 0.95
    report = evaluate(result.alerts, scenario.labels)
    for pattern in OI_PATTERNS:
        assert report.row(pattern).recall == 1.0 and report.row(pattern).precision == 1.0
    assert report.macro_precision == 1.0
    # the daily futures assets read the same snapshots: a minute series of open interest per market
    stored = stored_market_tables(db, START.date(), END.date())
    assert stored["open_interest"].group_by("market").len()["len"].min() > 3 * 1440 * 0.85
    db.dispose()


def test_sparse_snapshots_leave_open_interest_not_assessable(tmp_path):
    scenario = generate_futures(days=3, seed=4)
    db = _db(tmp_path)
    save_snapshots(db, _ticker_snapshots(scenario, END - timedelta(hours=3)))  # the sensor ran for 3 hours
    result = monitor_once(MarketDataClient(server=build_server(scenario.store)), start=START, end=END, db=db)
    assert result.not_assessed == OI_PATTERNS and max(result.oi_coverage.values()) < 0.1
    assert not result.alerts["pattern"].is_in(OI_PATTERNS).any()
    # without a database nothing is known of open interest
    bare = monitor_once(MarketDataClient(server=build_server(scenario.store)), start=START, end=END)
    assert bare.not_assessed == OI_PATTERNS and bare.oi_coverage == {}
    db.dispose()


def test_the_loop_stores_ticker_and_book_snapshots_each_minute(tmp_path):
    from surveillance_pipeline.market.loop import LoopSettings, MonitoringLoop, read_status
    from surveillance_pipeline.market.replay import ReplayStore, UTC_MS

    scenario = generate_futures(days=1, seed=2, markets=("BTCUSDT", "ETHUSDT"))
    at = datetime(2026, 3, 2, 23, 59, tzinfo=UTC)
    book = pl.DataFrame([("BTCUSDT", "futures", at, side, level, 60_000 + (level + 1) * (1 if side == "ask" else -1),
                          1.0 + level) for side in ("bid", "ask") for level in range(20)],
                        schema={"market": pl.String, "market_type": pl.String, "updated_at": UTC_MS,
                                "side": pl.String, "level": pl.Int32, "price": pl.Float64, "amount": pl.Float64},
                        orient="row")
    store = ReplayStore({**scenario.store.tables, "depth": book})  # ETHUSDT has no order book
    db = _db(tmp_path)
    clock = [0.0]
    loop = MonitoringLoop(lambda: MarketDataClient(server=build_server(store)), tmp_path / "loop",
                          LoopSettings(snapshot_interval_s=60), clock=lambda: clock[0], db=db,
                          now_override=datetime(2026, 3, 2, 23, 59, 30, tzinfo=UTC))
    loop.run_cycle()
    clock[0] = 30.0
    loop.run_cycle()  # within the minute: no new snapshot
    clock[0] = 61.0
    loop.run_cycle()
    tables = snapshot_tables(db, datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC))
    assert tables["depth"].height == 2 * 40 and set(tables["depth"]["market"]) == {"BTCUSDT"}
    assert tables["depth"]["updated_at"].unique().to_list() == [at]
    oi = tables["open_interest"]
    assert oi.height == 4 and set(oi["market"]) == {"BTCUSDT", "ETHUSDT"}  # 2 markets x 2 minutes
    assert read_status(tmp_path / "loop")["totals"]["snapshot_failures"] == 0
    db.dispose()
